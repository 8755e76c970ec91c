//! SoundNet's two heads as a type: `Heads<T>` holds one `T` per head, objects (the ImageNet
//! teacher's 1000 classes) and scenes (the Places teacher's 401), where bare `[T; 2]` arrays
//! indexed by 0 and 1 would leave the reader to remember which is which.

use serde::Serialize;

/// Which head: the order is that of the layer table, the parameters and the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeadKind {
    Objects,
    Scenes,
}

impl HeadKind {
    pub const ALL: [HeadKind; 2] = [HeadKind::Objects, HeadKind::Scenes];

    /// Its layer name, as checkpoints (`objects.weight`), manifests and `--layer` spell it.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Objects => "objects",
            HeadKind::Scenes => "scenes",
        }
    }

    pub fn from_name(name: &str) -> Option<HeadKind> {
        HeadKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Heads<T> {
    pub objects: T,
    pub scenes: T,
}

impl<T> Heads<T> {
    /// Each head's value, made from its kind.
    pub fn from_fn(mut f: impl FnMut(HeadKind) -> T) -> Heads<T> {
        Heads { objects: f(HeadKind::Objects), scenes: f(HeadKind::Scenes) }
    }

    pub fn get(&self, kind: HeadKind) -> &T {
        match kind {
            HeadKind::Objects => &self.objects,
            HeadKind::Scenes => &self.scenes,
        }
    }

    pub fn get_mut(&mut self, kind: HeadKind) -> &mut T {
        match kind {
            HeadKind::Objects => &mut self.objects,
            HeadKind::Scenes => &mut self.scenes,
        }
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Heads<U> {
        Heads { objects: f(self.objects), scenes: f(self.scenes) }
    }

    /// Objects, then scenes: for code that takes a slice.
    pub fn to_array(self) -> [T; 2] {
        [self.objects, self.scenes]
    }

    pub fn as_ref(&self) -> Heads<&T> {
        Heads { objects: &self.objects, scenes: &self.scenes }
    }

    /// The heads' values in order, with their kinds.
    pub fn iter(&self) -> impl Iterator<Item = (HeadKind, &T)> {
        [(HeadKind::Objects, &self.objects), (HeadKind::Scenes, &self.scenes)].into_iter()
    }
}

impl<T> IntoIterator for Heads<T> {
    type Item = (HeadKind, T);
    type IntoIter = std::array::IntoIter<(HeadKind, T), 2>;

    fn into_iter(self) -> Self::IntoIter {
        [(HeadKind::Objects, self.objects), (HeadKind::Scenes, self.scenes)].into_iter()
    }
}

impl<T> Heads<Option<T>> {
    /// The heads that are there, with their values.
    pub fn present(&self) -> impl Iterator<Item = (HeadKind, &T)> {
        self.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// `name value` for each head that is there, joined by ", " (`objects 1000, scenes 401`).
    pub fn describe(&self, show: impl Fn(&T) -> String) -> String {
        self.present().map(|(k, v)| format!("{k} {}", show(v))).collect::<Vec<_>>().join(", ")
    }
}
