// Every field type is checked to be a payload, except fields serde is told
// to skip: their type need not serialize. Containers of payloads are payloads.
use std::collections::BTreeMap;

use cmdbus::{Command, Payload};

#[derive(Default)]
struct LocalCache {
    _hits: u32,
}

#[derive(Payload)]
struct Line {
    sku: String,
}

#[derive(Command)]
#[command(domain = "orders")]
struct PlaceOrder {
    lines: Vec<Line>,
    notes: Option<BTreeMap<String, Line>>,
    #[serde(skip)]
    cache: LocalCache,
}

fn main() {
    let order = PlaceOrder { lines: Vec::new(), notes: None, cache: LocalCache::default() };
    let _ = order.cache._hits;
    let _ = (order.lines, order.notes);
}
