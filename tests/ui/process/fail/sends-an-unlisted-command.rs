use cmdbus::{Command, Process, Reacts, Steps, TypedReply};

#[derive(Command)]
#[command(domain = "ui-orders")]
struct Reserve {}

#[derive(Command)]
#[command(domain = "ui-orders")]
struct Refund {}

#[derive(Process)]
#[process(domain = "ui-orders", steps(Reserve))]
struct Order {}

impl cmdbus::Process for Order {
    type Timeout = ();
    fn start(&mut self, steps: &mut Steps<Self>) {
        steps.send(Reserve {});
        steps.compensate_with(Refund {});
    }
}

impl Reacts<Reserve> for Order {
    fn on_reply(&mut self, _: TypedReply<()>, _: &mut Steps<Self>) {}
}

fn main() {}
