//! SoundNet's heads as a type: `Heads<T>` holds one `T` per head: objects (the ImageNet
//! teacher's 1000 classes) and scenes (the Places teacher's 401), the two a student learns from its
//! teachers, and classes, the classifier `train --labels` trains on a labeled set's own classes.
//! Named fields, where bare arrays indexed by 0, 1 and 2 would leave the reader to remember which
//! is which.

use serde::Serialize;

/// Which head: the order is that of the layer table, the parameters and the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeadKind {
    Objects,
    Scenes,
    /// A labeled set's classes (`train --labels`): trained with cross-entropy on one-hot rows.
    Classes,
}

impl HeadKind {
    pub const ALL: [HeadKind; 3] = [HeadKind::Objects, HeadKind::Scenes, HeadKind::Classes];
    /// The heads a vision teacher gives distributions for: the columns of a dataset manifest.
    pub const TEACHERS: [HeadKind; 2] = [HeadKind::Objects, HeadKind::Scenes];

    /// Its layer name, as checkpoints (`objects.weight`), manifests and `--layer` spell it.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Objects => "objects",
            HeadKind::Scenes => "scenes",
            HeadKind::Classes => "classes",
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
    pub classes: T,
}

impl<T> Heads<T> {
    /// Each head's value, made from its kind.
    pub fn from_fn(mut f: impl FnMut(HeadKind) -> T) -> Heads<T> {
        Heads { objects: f(HeadKind::Objects), scenes: f(HeadKind::Scenes), classes: f(HeadKind::Classes) }
    }

    pub fn get(&self, kind: HeadKind) -> &T {
        match kind {
            HeadKind::Objects => &self.objects,
            HeadKind::Scenes => &self.scenes,
            HeadKind::Classes => &self.classes,
        }
    }

    pub fn get_mut(&mut self, kind: HeadKind) -> &mut T {
        match kind {
            HeadKind::Objects => &mut self.objects,
            HeadKind::Scenes => &mut self.scenes,
            HeadKind::Classes => &mut self.classes,
        }
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Heads<U> {
        Heads { objects: f(self.objects), scenes: f(self.scenes), classes: f(self.classes) }
    }

    pub fn as_ref(&self) -> Heads<&T> {
        Heads { objects: &self.objects, scenes: &self.scenes, classes: &self.classes }
    }

    /// The heads' values in order, with their kinds.
    pub fn iter(&self) -> impl Iterator<Item = (HeadKind, &T)> {
        [(HeadKind::Objects, &self.objects), (HeadKind::Scenes, &self.scenes), (HeadKind::Classes, &self.classes)]
            .into_iter()
    }
}

impl Heads<Vec<f32>> {
    /// Each head's values, borrowed.
    pub fn as_slices(&self) -> Heads<&[f32]> {
        Heads { objects: &self.objects, scenes: &self.scenes, classes: &self.classes }
    }
}

impl<T> IntoIterator for Heads<T> {
    type Item = (HeadKind, T);
    type IntoIter = std::array::IntoIter<(HeadKind, T), 3>;

    fn into_iter(self) -> Self::IntoIter {
        [(HeadKind::Objects, self.objects), (HeadKind::Scenes, self.scenes), (HeadKind::Classes, self.classes)]
            .into_iter()
    }
}

impl<T> Heads<Option<T>> {
    /// The values of the heads that are there, in order: for code that takes a slice.
    pub fn present_values(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.present().map(|(_, v)| v.clone()).collect()
    }

    /// The heads that are there, with their values.
    pub fn present(&self) -> impl Iterator<Item = (HeadKind, &T)> {
        self.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// `name value` for each head that is there, joined by ", " (`objects 1000, scenes 401`).
    pub fn describe(&self, show: impl Fn(&T) -> String) -> String {
        self.present().map(|(k, v)| format!("{k} {}", show(v))).collect::<Vec<_>>().join(", ")
    }
}
