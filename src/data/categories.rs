//! The class names of the two heads, in output order: ImageNet's 1000 objects and Places'
//! 401 scenes, as the original SoundNet's teachers used them.

use std::sync::OnceLock;

use super::{OBJECT_CLASSES, SCENE_CLASSES};

const OBJECTS_TXT: &str = include_str!("../../assets/categories_imagenet.txt");
const SCENES_TXT: &str = include_str!("../../assets/categories_places.txt");

/// Object class names (one line of the ImageNet list each, synonyms included).
pub fn objects() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| lines(OBJECTS_TXT, OBJECT_CLASSES))
}

/// Scene class names (Places labels such as `church/indoor`).
pub fn scenes() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| lines(SCENES_TXT, SCENE_CLASSES))
}

fn lines(text: &'static str, count: usize) -> Vec<&'static str> {
    let names: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(names.len(), count, "the shipped category list has {count} classes");
    names
}

/// The index of the class whose name (the whole line) is `name`.
pub fn index(names: &[&str], name: &str) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_the_heads_sizes() {
        assert_eq!(objects().len(), 1000);
        assert_eq!(scenes().len(), 401);
        assert_eq!(index(objects(), "analog clock"), Some(409));
        assert_eq!(index(scenes(), "abbey"), Some(0));
        // The copy in the soundnet package cut names at apostrophes ("s, jammies\","); ours is whole.
        assert_eq!(objects()[697], "pajama, pyjama, pj's, jammies");
        assert!(objects().iter().all(|n| !n.starts_with("s ") && !n.starts_with('-') && !n.ends_with("\",")));
    }
}
