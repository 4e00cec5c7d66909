use cmdbus::{Command, Process, Reacts, Steps, TypedReply};

#[derive(Command)]
#[command(domain = "ui-orders", reply = u32)]
struct Reserve {}

#[derive(Command)]
#[command(domain = "ui-orders")]
struct Release {}

#[derive(Process)]
#[process(domain = "ui-orders", name = "OrderV1", steps(Reserve), compensations(Release))]
struct Order {
    reserved: Option<u32>,
}

impl cmdbus::Process for Order {
    type Timeout = ();
    fn start(&mut self, steps: &mut Steps<Self>) {
        steps.send(Reserve {});
    }
}

impl Reacts<Reserve> for Order {
    fn on_reply(&mut self, reply: TypedReply<u32>, steps: &mut Steps<Self>) {
        if let TypedReply::Success(n) = reply {
            self.reserved = Some(n);
            steps.compensate_with(Release {});
        }
    }
}

fn main() {
    use cmdbus::process::ProcessType;
    assert_eq!(Order::NAME, "OrderV1");
    assert_eq!(Order::DOMAIN, "ui-orders");
}
