//! An operator's correction of a failed command's payload: what changed,
//! field by field, so the audit trail can say who changed what.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};
use uuid::Uuid;

/// One field an edit changed, added or removed.
///
/// ```
/// use serde_json::json;
/// let changes = cmdbus::FieldChange::between(
///     &json!({ "to": "a@example.com", "amount": 5 }),
///     &json!({ "to": "b@example.com", "amount": 5 }),
/// );
/// assert_eq!(changes.len(), 1);
/// assert_eq!(changes[0].path, "/to");
/// assert_eq!(changes[0].after, Some(json!("b@example.com")));
/// ```
/// It is recorded in the audit trail (`payload_changes` of the retry's
/// details) and reads back from there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FieldChange {
    /// Where, as a JSON pointer (`""` for the whole payload).
    pub path: String,
    /// The value before; `None`: the field was added.
    pub before: Option<Value>,
    /// The value after; `None`: the field was removed.
    pub after: Option<Value>,
}

impl FieldChange {
    /// The changes that turn `before` into `after`. Objects are compared
    /// field by field, anything else (arrays included) as a whole; fields
    /// come in key order.
    pub fn between(before: &Value, after: &Value) -> Vec<Self> {
        let mut changes = Vec::new();
        diff(String::new(), before, after, &mut changes);
        changes
    }
}

fn diff(path: String, before: &Value, after: &Value, changes: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => diff_objects(&path, b, a, changes),
        _ if before == after => {}
        _ => changes.push(FieldChange {
            path,
            before: Some(before.clone()),
            after: Some(after.clone()),
        }),
    }
}

fn diff_objects(
    path: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    changes: &mut Vec<FieldChange>,
) {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        // JSON pointer escaping (RFC 6901).
        let at = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
        match (before.get(key), after.get(key)) {
            (Some(b), Some(a)) => diff(at, b, a, changes),
            (b, a) => changes.push(FieldChange { path: at, before: b.cloned(), after: a.cloned() }),
        }
    }
}

/// A checked payload edit of a command in the troubleshooting queue, as
/// [`Troubleshooting::edit_and_retry`](crate::Troubleshooting::edit_and_retry)
/// reports it and a transport stores it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PayloadEdit {
    /// The command's domain.
    pub domain: String,
    /// The command's id.
    pub command_id: Uuid,
    /// The payload the edit was made against: stored only if it is still this.
    pub before: Box<RawValue>,
    /// The new payload.
    pub after: Box<RawValue>,
    /// What changed.
    pub changes: Vec<FieldChange>,
    /// Whether it was stored (and the command retried); `false` for a dry run.
    pub applied: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_fields_added_removed_and_changed_are_listed_in_key_order() {
        let before = json!({ "a": 1, "n": { "x": 1, "y": [1, 2] }, "gone": true, "a/b": 0 });
        let after = json!({ "a": 1, "n": { "x": 2, "y": [1, 3], "z": null }, "a/b": 1 });
        let changes = FieldChange::between(&before, &after);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/a~1b", "/gone", "/n/x", "/n/y", "/n/z"]);
        assert_eq!(changes[1].after, None);
        assert_eq!(changes[4].before, None);
        assert_eq!(changes[3].after, Some(json!([1, 3])));
    }

    #[test]
    fn a_different_kind_of_value_replaces_the_whole() {
        let changes = FieldChange::between(&json!({ "a": 1 }), &json!([1]));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "");
        assert!(FieldChange::between(&json!("x"), &json!("x")).is_empty());
    }
}
