//! The standalone console's logins: sessions kept in memory (a restart
//! logs everyone out), and a limit on failed logins per name and per
//! client address so passwords cannot be guessed at speed.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::request::Parts;

use crate::{Identify, User, Users, cookies};

/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Failed logins allowed per name, and per client address, within
/// [`FAILURE_WINDOW`]; further attempts are refused unchecked until older
/// failures leave the window.
pub const MAX_FAILURES: usize = 5;
/// See [`MAX_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Logged-in users, by session token.
pub(crate) struct Sessions {
    pub(crate) users: Users,
    sessions: Mutex<HashMap<String, (User, Instant)>>,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Why a login did not start a session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoginRefused {
    /// Wrong name or password (which one is not said).
    Wrong,
    /// Too many failures lately; try again after this long.
    Throttled(Duration),
}

impl Sessions {
    pub(crate) fn new(users: Users) -> Self {
        Self { users, sessions: Mutex::default(), failures: Mutex::default() }
    }

    /// Checks `name` and `password` (argon2, off the async runtime) unless
    /// the name or `client` failed too often lately; on success, the new
    /// session's token.
    pub(crate) async fn log_in(
        &self,
        name: &str,
        password: String,
        client: Option<IpAddr>,
    ) -> Result<(User, String), LoginRefused> {
        let keys =
            [format!("name:{name}"), client.map_or_else(String::new, |ip| format!("ip:{ip}"))];
        if let Some(wait) = self.throttled(&keys) {
            return Err(LoginRefused::Throttled(wait));
        }
        let users = self.users.clone();
        let who = name.to_owned();
        let user =
            tokio::task::spawn_blocking(move || users.verify(&who, &password)).await.ok().flatten();
        let Some(user) = user else {
            self.record_failure(&keys);
            return Err(LoginRefused::Wrong);
        };
        let token = cookies::token().map_err(|_| LoginRefused::Wrong)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, (_, expires)| *expires > now);
        sessions.insert(token.clone(), (user.clone(), now + SESSION_LIFETIME));
        Ok((user, token))
    }

    pub(crate) fn log_out(&self, token: &str) {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(token);
    }

    fn throttled(&self, keys: &[String]) -> Option<Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        keys.iter()
            .filter(|key| !key.is_empty())
            .filter_map(|key| {
                let times = failures.get_mut(key)?;
                times.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
                let oldest = *times.first()?;
                (times.len() >= MAX_FAILURES).then(|| FAILURE_WINDOW - now.duration_since(oldest))
            })
            .max()
    }

    fn record_failure(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in keys.iter().filter(|key| !key.is_empty()) {
            failures.entry(key.clone()).or_default().push(Instant::now());
        }
    }
}

impl Identify for Sessions {
    fn identify(&self, request: &Parts) -> Option<User> {
        let token = cookies::get(&request.headers, cookies::SESSION)?;
        let sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (user, expires) = sessions.get(token)?;
        (*expires > Instant::now()).then(|| user.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_password;

    fn sessions() -> Sessions {
        let hash = hash_password("pw").expect("hash");
        Sessions::new(Users::parse(&format!("ann operator {hash}")).expect("users"))
    }

    #[tokio::test]
    async fn failures_throttle_the_name_and_the_address() {
        let sessions = sessions();
        let here: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                sessions.log_in("ann", "no".into(), Some(here)).await.err(),
                Some(LoginRefused::Wrong)
            );
        }
        // Now even the right password is refused, from anywhere, for ann...
        let refused = sessions.log_in("ann", "pw".into(), Some([10, 0, 0, 2].into())).await;
        assert!(matches!(refused, Err(LoginRefused::Throttled(wait)) if wait <= FAILURE_WINDOW));
        // ...and any name from the guessing address.
        let refused = sessions.log_in("bob", "pw".into(), Some(here)).await;
        assert!(matches!(refused, Err(LoginRefused::Throttled(_))));
    }

    #[tokio::test]
    async fn a_session_identifies_until_logged_out() {
        let sessions = sessions();
        let (user, token) = sessions.log_in("ann", "pw".into(), None).await.expect("logged in");
        let request = |cookie: &str| {
            let request = axum::http::Request::builder()
                .header("cookie", format!("{}={cookie}", cookies::SESSION))
                .body(())
                .expect("request");
            request.into_parts().0
        };
        assert_eq!(sessions.identify(&request(&token)), Some(user));
        assert_eq!(sessions.identify(&request("forged")), None);
        sessions.log_out(&token);
        assert_eq!(sessions.identify(&request(&token)), None);
    }
}
