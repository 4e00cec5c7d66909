use cmdbus::{Command, Process, Steps};

#[derive(Command)]
#[command(domain = "ui-orders")]
struct Reserve {}

#[derive(Process)]
#[process(domain = "ui-orders", steps(Reserve))]
struct Order {}

impl cmdbus::Process for Order {
    type Timeout = ();
    fn start(&mut self, _: &mut Steps<Self>) {}
}

fn main() {}
