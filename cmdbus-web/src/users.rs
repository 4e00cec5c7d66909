//! The standalone console's users: a file of names, roles and argon2
//! password hashes, one user per line. No password is ever stored or
//! logged; `cmdbus web hash-password` makes the hashes.
//!
//! ```text
//! # name      role      argon2 hash (PHC string)
//! alice       operator  $argon2id$v=19$m=19456,t=2,p=1$...
//! bob         viewer    $argon2id$v=19$m=19456,t=2,p=1$...
//! ```

use std::{collections::HashMap, fmt, path::Path};

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use cmdbus::Operator;

use crate::{ConsoleError, Role, User};

/// The users who may log in.
#[derive(Clone)]
pub struct Users {
    by_name: HashMap<String, (User, String)>,
}

impl Users {
    /// Reads a users file.
    ///
    /// # Errors
    ///
    /// [`ConsoleError::Users`] for an unreadable file, a bad line (named by
    /// its number), or a file that names nobody (line 0): the console never
    /// runs without authentication.
    pub fn load(path: &Path) -> Result<Self, ConsoleError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConsoleError::Users {
            path: path.display().to_string(),
            line: 0,
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, reason)| ConsoleError::Users {
            path: path.display().to_string(),
            line,
            reason,
        })
    }

    /// Parses a users file's text; an error names the line (1-based) and why.
    ///
    /// # Errors
    ///
    /// `(line, reason)`; line 0 when the file names nobody.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut by_name = HashMap::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, role, hash] = fields[..] else {
                return Err((number, "expected: <name> <viewer|operator> <argon2 hash>".into()));
            };
            let role: Role = role.parse().map_err(|e| (number, e))?;
            let name = Operator::new(name).map_err(|e| (number, e.to_string()))?;
            PasswordHash::new(hash)
                .map_err(|e| (number, format!("not an argon2 PHC hash ({e})")))?;
            let user = User::new(name.clone(), role);
            if by_name.insert(name.as_str().to_owned(), (user, hash.to_owned())).is_some() {
                return Err((number, format!("{name} is named twice")));
            }
        }
        if by_name.is_empty() {
            return Err((
                0,
                "it names no user; the console never runs without authentication".into(),
            ));
        }
        Ok(Self { by_name })
    }

    /// The user `name` if `password` is theirs. Takes tens of milliseconds
    /// (argon2, on purpose): call it off the async runtime. Unknown names
    /// cost the same as wrong passwords, so timing does not tell them apart.
    pub fn verify(&self, name: &str, password: &str) -> Option<User> {
        let (user, hash) = match self.by_name.get(name) {
            Some((user, hash)) => (Some(user), hash.as_str()),
            None => (None, DUMMY_HASH),
        };
        let hash = PasswordHash::new(hash).ok()?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
        user.filter(|_| ok).cloned()
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: hashes stay out of logs.
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

/// The hash of a password nobody has, checked for unknown names.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZXNqAwn5SMwqJ0OP5MDUqSfvSb1WMTw6sJGAbD+wuTE";

/// An argon2id hash (PHC string) of `password` with a fresh random salt,
/// for a users file.
///
/// # Errors
///
/// [`ConsoleError::Random`] when the system has no randomness to give.
pub fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ConsoleError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ConsoleError::Random(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ConsoleError::Random(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_log_in_with_their_own_password_only() {
        let hash = hash_password("correct horse").expect("hash");
        let users =
            Users::parse(&format!("# comment\n\nalice operator {hash}\nbob viewer {hash}\n"))
                .expect("parse");
        let alice = users.verify("alice", "correct horse").expect("alice");
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Operator));
        assert_eq!(users.verify("bob", "correct horse").map(|u| u.role), Some(Role::Viewer));
        assert_eq!(users.verify("alice", "wrong"), None);
        assert_eq!(users.verify("carol", "correct horse"), None);
        assert!(!format!("{users:?}").contains("argon2"), "no hash in Debug");
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let hash = hash_password("x").expect("hash");
        for (text, line, needle) in [
            ("", 0, "no user"),
            ("alice operator", 1, "expected"),
            ("\nalice admin $argon2id$x", 2, "unknown role"),
            ("alice operator not-a-hash", 1, "PHC"),
            (&*format!("a operator {hash}\na viewer {hash}"), 2, "twice"),
        ] {
            let Err((at, reason)) = Users::parse(text) else { panic!("{text:?} accepted") };
            assert_eq!(at, line, "{text:?}: {reason}");
            assert!(reason.contains(needle), "{text:?}: {reason}");
        }
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy hash parses");
        let missing = Users::load(Path::new("/nonexistent/users")).expect_err("missing file");
        assert!(missing.to_string().contains("/nonexistent/users"), "{missing}");
    }
}
