//! SoundNet as data: the layer tables of the original torch7 definitions, and the lengths an input
//! takes through them. The same table builds the model
//! (`network.rs`) and drives benches and memory estimates.

use super::heads::Heads;

/// One convolution of the body, followed by batchnorm and ReLU, and optionally a max-pool whose
/// kernel equals its stride.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvLayer {
    pub name: &'static str,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub pool: Option<usize>,
}

/// A classification head on the last body layer: a plain convolution, no batchnorm or ReLU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Head {
    pub name: &'static str,
    pub classes: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arch {
    pub name: String,
    pub body: Vec<ConvLayer>,
    /// One or both of `objects` and `scenes`, in that order, each as wide as its teacher; or
    /// `classes`, a labeled set's.
    pub heads: Vec<Head>,
    /// The body layer a fine-tuning classifier sits on (`train --head`, as `pool5` or `conv7`
    /// name it): the body ends there and the head is the fine-tuning one. None: the whole body
    /// and the layer table's heads.
    pub head_on: Option<String>,
}

/// The classifier the original fine-tuning appends (`main_finetune.lua`): a convolution of kernel
/// 4 and stride 1, no padding, on the layer it is given.
pub const FINETUNE_HEAD: (usize, usize, usize) = (4, 1, 0);

const fn conv(name: &'static str, cin: usize, cout: usize, k: usize, pad: usize, pool: Option<usize>) -> ConvLayer {
    ConvLayer { name, cin, cout, k, stride: 2, pad, pool }
}

/// SoundNet-8, the paper's main model.
pub fn soundnet8() -> Arch {
    Arch {
        name: "soundnet8".into(),
        body: vec![
            conv("conv1", 1, 16, 64, 32, Some(8)),
            conv("conv2", 16, 32, 32, 16, Some(8)),
            conv("conv3", 32, 64, 16, 8, None),
            conv("conv4", 64, 128, 8, 4, None),
            conv("conv5", 128, 256, 4, 2, Some(4)),
            conv("conv6", 256, 512, 4, 2, None),
            conv("conv7", 512, 1024, 4, 2, None),
        ],
        heads: vec![
            Head { name: "objects", classes: 1000, k: 8, stride: 2, pad: 0 },
            Head { name: "scenes", classes: 401, k: 8, stride: 2, pad: 0 },
        ],
        head_on: None,
    }
}

/// SoundNet-5, the paper's smaller model.
pub fn soundnet5() -> Arch {
    Arch {
        name: "soundnet5".into(),
        body: vec![
            conv("conv1", 1, 32, 64, 32, Some(8)),
            conv("conv2", 32, 64, 32, 16, Some(8)),
            conv("conv3", 64, 128, 16, 8, Some(8)),
            conv("conv4", 128, 256, 8, 4, None),
        ],
        heads: vec![
            Head { name: "objects", classes: 1000, k: 16, stride: 12, pad: 4 },
            Head { name: "scenes", classes: 401, k: 16, stride: 12, pad: 4 },
        ],
        head_on: None,
    }
}

/// Output length of a convolution or pool; `None` when the input is too short for one output.
pub fn out_len(len: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    (len + 2 * pad).checked_sub(k).map(|span| span / stride + 1)
}

impl Arch {
    /// `soundnet8`, `soundnet5`, or a narrow variant such as `soundnet8-narrow8` (the name
    /// `narrow` gives; checkpoints store it), with the authors' heads: 1000 objects and 401 scenes
    /// (`with_heads` sizes them from the data; checkpoints record the widths in the heads' shapes).
    pub fn by_name(name: &str) -> anyhow::Result<Arch> {
        let (base, divisor) = match name.split_once("-narrow") {
            Some((base, d)) => match d.parse::<usize>() {
                Ok(d) if d >= 1 => (base, Some(d)),
                _ => anyhow::bail!("unknown model {name:?}: the narrow divisor must be a whole number of at least 1"),
            },
            None => (name, None),
        };
        let arch = match base {
            "soundnet8" => soundnet8(),
            "soundnet5" => soundnet5(),
            _ => anyhow::bail!("unknown model {name:?}: expected soundnet8 or soundnet5, optionally -narrowN"),
        };
        Ok(match divisor {
            Some(d) => arch.narrow(d, 1000, 401),
            None => arch,
        })
    }

    /// The same layer table with every body layer's output channels divided by `divisor` (at least
    /// 1) and heads of `objects` and `scenes` classes: the narrow variants tests train quickly.
    pub fn narrow(&self, divisor: usize, objects: usize, scenes: usize) -> Arch {
        let mut body = self.body.clone();
        let mut cin = 1;
        for layer in &mut body {
            layer.cin = cin;
            layer.cout = (layer.cout / divisor).max(1);
            cin = layer.cout;
        }
        Arch { name: format!("{}-narrow{divisor}", self.name), body, heads: self.heads.clone(), head_on: None }
            .with_heads(Heads { objects: Some(objects), scenes: Some(scenes), classes: None })
    }

    /// The same network with heads of `classes` (objects, scenes; None leaves that head out), with
    /// the kernel, stride and padding of the layer table's heads. At least one head.
    pub fn with_heads(&self, classes: Heads<Option<usize>>) -> Arch {
        let shape = self.heads[0];
        let heads: Vec<Head> =
            classes.present().map(|(kind, &classes)| Head { name: kind.name(), classes, ..shape }).collect();
        assert!(!heads.is_empty(), "a SoundNet needs at least one head");
        Arch { heads, ..self.clone() }
    }

    /// The classes of each head, objects then scenes; None for a head it does not have.
    pub fn head_classes(&self) -> Heads<Option<usize>> {
        Heads::from_fn(|kind| self.heads.iter().find(|h| h.name == kind.name()).map(|h| h.classes))
    }

    /// The name of each body layer's output, as `--head` and `--freeze` take them: `poolN` for a
    /// layer that pools, else `convN`.
    pub fn body_outputs(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.body.len());
        for (i, layer) in self.body.iter().enumerate() {
            names.push(format!("{}{}", if layer.pool.is_some() { "pool" } else { "conv" }, i + 1));
        }
        names
    }

    /// How many body layers end at `layer` (`pool5` is 5), which must be a name of
    /// `body_outputs`; `flag` names the option in the error.
    pub fn body_depth(&self, layer: &str, flag: &str) -> anyhow::Result<usize> {
        let names = self.body_outputs();
        match names.iter().position(|n| n == layer) {
            Some(i) => Ok(i + 1),
            None => anyhow::bail!(
                "{flag} {layer:?}: {} has no such body layer; its layers are {} (a layer that pools is named \
                 by its pool)",
                self.name,
                names.join(", ")
            ),
        }
    }

    /// The body up to and including `layer` (a name of `body_outputs`), with the fine-tuning
    /// classifier (`FINETUNE_HEAD`) in place of the heads: their names and classes stay until
    /// `with_heads` sizes them.
    pub fn with_head_on(&self, layer: &str) -> anyhow::Result<Arch> {
        let depth = self.body_depth(layer, "--head")?;
        let (k, stride, pad) = FINETUNE_HEAD;
        let heads = self.heads.iter().map(|h| Head { k, stride, pad, ..*h }).collect();
        Ok(Arch { body: self.body[..depth].to_vec(), heads, head_on: Some(layer.to_string()), ..self.clone() })
    }

    /// Channels of the last body layer: the heads' input.
    pub fn feature_channels(&self) -> usize {
        self.body.last().expect("a body").cout
    }

    /// Length after each body layer's conv and after its pool, then the heads' output steps;
    /// `None` when `samples` is too short to give at least one output step.
    pub fn lengths(&self, samples: usize) -> Option<Lengths> {
        let mut len = samples;
        let mut body = Vec::with_capacity(self.body.len());
        for layer in &self.body {
            let conv = out_len(len, layer.k, layer.stride, layer.pad)?;
            len = match layer.pool {
                Some(p) => out_len(conv, p, p, 0)?,
                None => conv,
            };
            body.push((conv, len));
        }
        let h = &self.heads[0];
        let steps = out_len(len, h.k, h.stride, h.pad)?;
        Some(Lengths { body, steps })
    }

    /// The shortest input, in samples, that gives one output step.
    pub fn min_samples(&self) -> usize {
        // Lengths are monotone in the input length, so bisect.
        let (mut lo, mut hi) = (1, 1 << 26);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.lengths(mid).is_some() {
                hi = mid
            } else {
                lo = mid + 1
            }
        }
        lo
    }
}

/// Per body layer, (length after the conv, length after the pool or the conv), and the number of
/// output steps of the heads.
#[derive(Debug, Clone, PartialEq)]
pub struct Lengths {
    pub body: Vec<(usize, usize)>,
    pub steps: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soundnet8_lengths_match_the_paper() {
        // 20 s at 22,050 Hz gives 4 output steps; 209,374 samples is the shortest input giving 1.
        assert_eq!(soundnet8().lengths(441_000).unwrap().steps, 4);
        assert_eq!(soundnet8().min_samples(), 209_374);
        assert_eq!(soundnet8().lengths(209_374).unwrap().steps, 1);
        assert!(soundnet8().lengths(209_373).is_none());
        let l = soundnet8().lengths(441_000).unwrap();
        assert_eq!(l.body[0], (220_501, 27_562));
        assert_eq!(l.body[6], (15, 15));
    }

    #[test]
    fn soundnet5_chains_channels() {
        for arch in [soundnet8(), soundnet5(), soundnet8().narrow(4, 10, 7)] {
            for pair in arch.body.windows(2) {
                assert_eq!(pair[0].cout, pair[1].cin, "{}: {} -> {}", arch.name, pair[0].name, pair[1].name);
            }
        }
        assert!(soundnet5().lengths(441_000).unwrap().steps >= 1);
        let narrow = Arch::by_name("soundnet8-narrow8").unwrap();
        assert_eq!(narrow, soundnet8().narrow(8, 1000, 401));
        assert_eq!(Arch::by_name(&narrow.name).unwrap(), narrow);
        assert!(Arch::by_name("soundnet8-narrow0").is_err() && Arch::by_name("vggish").is_err());
    }

    #[test]
    fn heads_are_sized_and_left_out_by_the_data() {
        let places = soundnet5().with_heads(Heads { scenes: Some(365), ..Heads::default() });
        assert_eq!(places.heads.len(), 1);
        assert_eq!((places.heads[0].name, places.heads[0].classes, places.heads[0].k), ("scenes", 365, 16));
        assert_eq!(places.head_classes(), Heads { scenes: Some(365), ..Heads::default() });
        assert_eq!(soundnet8().head_classes(), Heads { objects: Some(1000), scenes: Some(401), classes: None });
        assert_eq!(soundnet8().with_heads(soundnet8().head_classes()), soundnet8());
    }

    #[test]
    fn a_finetuning_head_ends_the_body_at_its_layer() {
        let arch =
            soundnet8().with_head_on("pool5").unwrap().with_heads(Heads { classes: Some(10), ..Heads::default() });
        assert_eq!(arch.body.len(), 5);
        assert_eq!(arch.feature_channels(), 256);
        assert_eq!(arch.heads, [Head { name: "classes", classes: 10, k: 4, stride: 1, pad: 0 }]);
        assert_eq!(arch.head_on.as_deref(), Some("pool5"));
        // 10 s: pool5 has (conv5 length) / 4 positions, and a kernel-4 stride-1 head 3 fewer.
        let l = arch.lengths(220_500).unwrap();
        assert_eq!(l.steps, l.body[4].1 - 3);
        assert_eq!(soundnet8().body_outputs(), ["pool1", "pool2", "conv3", "conv4", "pool5", "conv6", "conv7"]);
        for bad in ["conv5", "conv8", "objects"] {
            let err = soundnet8().with_head_on(bad).unwrap_err().to_string();
            assert!(err.contains("pool1, pool2, conv3, conv4, pool5, conv6, conv7"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_round_trip_through_by_name() {
        for arch in [soundnet8(), soundnet5(), soundnet8().narrow(8, 1000, 401), soundnet5().narrow(2, 1000, 401)] {
            assert_eq!(Arch::by_name(&arch.name).unwrap(), arch);
        }
        for bad in ["soundnet9", "soundnet8-narrow0", "soundnet8-narrowx", "soundnet8-narrow"] {
            assert!(Arch::by_name(bad).is_err(), "{bad}");
        }
    }
}
