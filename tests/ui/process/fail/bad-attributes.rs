use cmdbus::Process;

#[derive(Process)]
#[process(name = "Not Valid", retries = 3)]
struct Order {}

#[derive(Process)]
#[process(domain = "Bad Domain", steps())]
struct Other {}

fn main() {}
