//! Editing a group one member at a time (the admin page's "remove" next to
//! each target), beside `directory`'s whole-alias add and remove.

use rusqlite::params;

use crate::{Store, StoreError};

/// What an alias is called, from its address and number of targets: a
/// catch-all (`@domain`), a group (several targets) or an alias.
pub fn alias_kind(address: &str, targets: usize) -> &'static str {
    if address.starts_with('@') {
        "catch-all"
    } else if targets > 1 {
        "group"
    } else {
        "alias"
    }
}

impl Store {
    /// Removes one target of an alias, group or catch-all; the alias goes
    /// with its last target (an alias without targets would reject mail
    /// that a removed alias lets fall through to the catch-all).
    pub fn remove_alias_target(&self, address: &str, target: &str) -> Result<(), StoreError> {
        let (address, target) = (address.trim().to_lowercase(), target.trim().to_lowercase());
        let n = self.conn()?.execute(
            "DELETE FROM aliases WHERE address = ?1 AND target = ?2",
            params![address, target],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "target {target} of alias {address}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreError};

    #[test]
    fn removes_one_target_then_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_domain("ex.test").unwrap();
        let targets = ["a@ex.test".to_string(), "b@other.test".to_string()];
        store.add_alias("team@ex.test", &targets).unwrap();
        store
            .remove_alias_target("Team@ex.test", "A@ex.test")
            .unwrap();
        assert_eq!(
            store.aliases().unwrap(),
            vec![("team@ex.test".to_string(), vec!["b@other.test".to_string()])]
        );
        assert!(matches!(
            store.remove_alias_target("team@ex.test", "a@ex.test"),
            Err(StoreError::NotFound(_))
        ));
        store
            .remove_alias_target("team@ex.test", "b@other.test")
            .unwrap();
        assert!(store.aliases().unwrap().is_empty());
    }
}
