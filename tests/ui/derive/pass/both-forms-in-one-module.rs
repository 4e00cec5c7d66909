// The attribute alias and the derive live side by side: on a derived type,
// `#[command(...)]` is the derive's helper attribute even with the alias imported.
use cmdbus::{Command, command};

#[command(domain = "payments")]
struct Old {
    cents: i64,
}

#[derive(Command)]
#[command(domain = "payments", max_attempts = 2)]
struct New {
    cents: i64,
}

fn main() {
    assert_eq!((Old::NAME, New::NAME, New::MAX_ATTEMPTS), ("Old", "New", 2));
    let _ = (Old { cents: 1 }.cents, New { cents: 1 }.cents);
}
