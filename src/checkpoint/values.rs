//! The values a checkpoint tensor may hold. A NaN or an infinity never trains or predicts
//! anything; a negative running variance is no variance; and a weight of astronomical size makes
//! every later layer overflow or return garbage without a word. Each is a damaged file.

/// The largest magnitude a weight or running statistic may have. The authors' SoundNet-8 has no
/// weight above 9 and no running variance above 5.3e4. A weight of 1e15 on an input of ±256,
/// summed over the up to 8,192 taps of a SoundNet conv, is 2e21: past 1.8e19, the largest value
/// whose square (batchnorm's variance, the gradients' products) f32 holds, so no network with a
/// weight beyond it computes anything finite from ordinary audio.
pub const MAX_MAGNITUDE: f32 = 1e15;

/// Why tensor `name` cannot hold `values`, if it cannot.
pub fn problem(name: &str, values: &[f32]) -> Option<String> {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Some(format!(
            "tensor {name} holds a non-finite value ({v}) at index {i}; the file is damaged (a checkpoint is only \
             ever written with finite values)"
        ));
    }
    // Adam's moments never meet an input; finite is all they must be.
    if name.starts_with("adam.") {
        return None;
    }
    if name.ends_with(".running_var") {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Some(format!(
                "tensor {name} holds {v} at index {i}; a variance cannot be negative, so the file is damaged"
            ));
        }
    }
    let (i, v) = values.iter().enumerate().find(|(_, v)| v.abs() > MAX_MAGNITUDE)?;
    Some(format!(
        "tensor {name} holds {v:e} at index {i}, beyond ±{MAX_MAGNITUDE:e}: no network computes anything finite \
         through such a weight, so the file is damaged"
    ))
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn impossible_values_are_named_with_their_index() {
        assert_eq!(problem("conv1.weight", &[1.0, -9.0, 1e15]), None);
        assert_eq!(problem("bn1.running_var", &[0.0, 5.3e4]), None);
        assert_eq!(
            problem("conv1.weight", &[0.5, 3e38]).unwrap(),
            "tensor conv1.weight holds 3e38 at index 1, beyond ±1e15: no network computes anything finite through \
             such a weight, so the file is damaged"
        );
        assert!(problem("bn2.bias", &[-2e15]).unwrap().starts_with("tensor bn2.bias holds -2e15 at index 0"));
        assert_eq!(
            problem("bn3.running_var", &[1.0, 2.0, -0.5]).unwrap(),
            "tensor bn3.running_var holds -0.5 at index 2; a variance cannot be negative, so the file is damaged"
        );
        assert!(problem("bn3.running_mean", &[-0.5]).is_none());
        assert!(problem("adam.v.conv1.weight", &[1e20]).is_none());
        assert!(problem("adam.v.conv1.weight", &[f32::NAN]).unwrap().contains("non-finite value (NaN) at index 0"));
    }
}
