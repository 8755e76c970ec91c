//! A filter's magnitude frequency response: the discrete-time Fourier transform of its taps,
//! sampled at evenly spaced frequencies from 0 Hz to the Nyquist frequency (a zero-padded DFT,
//! computed directly: 64 taps times a few hundred frequencies is nothing).

/// Frequencies the response is sampled at, 0 Hz and Nyquist included.
pub const POINTS: usize = 257;

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// `POINTS` frequencies in Hz, ascending from 0 to the Nyquist frequency.
    pub hz: Vec<f64>,
    /// |H(f)| at each frequency.
    pub magnitude: Vec<f64>,
}

impl Response {
    /// The response of `taps` for a signal sampled at `rate` Hz.
    pub fn of(taps: &[f32], rate: f64) -> Response {
        let nyquist = rate / 2.0;
        let hz: Vec<f64> = (0..POINTS).map(|i| nyquist * i as f64 / (POINTS - 1) as f64).collect();
        let magnitude = hz
            .iter()
            .map(|&f| {
                let w = 2.0 * std::f64::consts::PI * f / rate;
                let (re, im) = taps.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, &t)| {
                    let (s, c) = (w * n as f64).sin_cos();
                    (re + f64::from(t) * c, im - f64::from(t) * s)
                });
                re.hypot(im)
            })
            .collect();
        Response { hz, magnitude }
    }

    fn peak(&self) -> usize {
        (0..self.magnitude.len()).fold(0, |best, i| if self.magnitude[i] > self.magnitude[best] { i } else { best })
    }

    /// The frequency of the largest magnitude (the lowest such on ties).
    pub fn peak_hz(&self) -> f64 {
        self.hz[self.peak()]
    }

    /// The band around the peak where the magnitude stays within `db` of it: from the last sampled
    /// frequency below that falls `db` under the peak (or 0 Hz), to the first above (or Nyquist).
    pub fn band_hz(&self, db: f64) -> [f64; 2] {
        let p = self.peak();
        let floor = self.magnitude[p] * 10f64.powf(-db / 20.0);
        let lo = (0..p).rev().find(|&i| self.magnitude[i] < floor).map_or(0, |i| i + 1);
        let hi =
            (p + 1..self.magnitude.len()).find(|&i| self.magnitude[i] < floor).map_or(self.hz.len() - 1, |i| i - 1);
        [self.hz[lo], self.hz[hi]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windowed_sinusoid_peaks_at_its_frequency() {
        let rate = 22_050.0;
        // 64 taps of 2 kHz under a Hann window: the peak within one frequency step (43 Hz).
        let taps: Vec<f32> = (0..64)
            .map(|n| {
                let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / 63.0).cos();
                (hann * (2.0 * std::f64::consts::PI * 2000.0 * n as f64 / rate).sin()) as f32
            })
            .collect();
        let r = Response::of(&taps, rate);
        assert!((r.peak_hz() - 2000.0).abs() < rate / 2.0 / (POINTS - 1) as f64, "{}", r.peak_hz());
        let [lo, hi] = r.band_hz(3.0);
        assert!(lo < 2000.0 && hi > 2000.0 && hi - lo < 1000.0, "{lo}..{hi}");
        // A single tap passes every frequency equally; a two-tap average is a low-pass with a
        // zero at Nyquist.
        let flat = Response::of(&[0.5], rate);
        assert!(flat.magnitude.iter().all(|&m| (m - 0.5).abs() < 1e-12));
        assert_eq!(flat.band_hz(3.0), [0.0, rate / 2.0]);
        let average = Response::of(&[0.5, 0.5], rate);
        assert_eq!(average.peak_hz(), 0.0);
        assert!(average.magnitude[POINTS - 1].abs() < 1e-12);
    }
}
