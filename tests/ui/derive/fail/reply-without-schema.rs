use cmdbus::Command;

// A DTO shared with an HTTP API: serde's traits, but no JSON schema, which
// the command-type catalog needs to check results operators give.
#[derive(cmdbus::__private::serde::Serialize, cmdbus::__private::serde::Deserialize)]
#[serde(crate = "cmdbus::__private::serde")]
struct Receipt {
    reference: String,
}

#[derive(Command)]
#[command(domain = "payments", reply = Receipt)]
struct Charge {
    cents: i64,
}

fn main() {}
