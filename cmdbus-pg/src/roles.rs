//! Least-privilege grants: a role for senders, one for workers, one for
//! operators, each able to do only its part. Migrations run as the schema's
//! owner; nobody but the owner may update or delete audit rows.

use cmdbus::Error;

use crate::schema::Schema;

/// The columns of `commands` a transition writes. Leasing also writes
/// `leased_by` (the worker that leased it last), which only workers may:
/// that is what keeps operators from leasing.
const TRANSITION_COLUMNS: &str = "status, attempts, due_at, lease_id, lease_expires_at, received_at, last_error, finished_at, updated_at";

/// What a database role is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Sends commands and reads their status and replies.
    Sender,
    /// Leases, records outcomes, extends and rescues leases; stores the
    /// commands handlers send, the completions of batches it ends, and the
    /// process instances it runs (with their steps' batches).
    Worker,
    /// Reads everything (process instances included; acting on one sends
    /// an event command); retries, cancels and completes troubleshooting-queue
    /// items (storing the completion of a batch such an action ends).
    Operator,
}

/// The `GRANT` statements that let `role_name` act as `role` on `schema`.
///
/// ```
/// use cmdbus_pg::{Role, grants_sql};
/// let sql = grants_sql("cmdbus", Role::Sender, "orders_service").unwrap();
/// assert!(sql.contains("GRANT SELECT, INSERT ON \"cmdbus\".commands TO \"orders_service\""));
/// ```
pub fn grants_sql(schema: &str, role: Role, role_name: &str) -> Result<String, Error> {
    let schema = Schema::new(schema)?;
    // Role names are identifiers spliced into SQL: same rules as schema names.
    let grantee = Schema::new(role_name).map_err(|_| Error::InvalidName {
        kind: "role",
        value: role_name.to_owned(),
        reason: "only lowercase ASCII letters, digits and `_`, starting with a letter or `_`",
    })?;
    let g = format!("\"{}\"", grantee.name());
    let common = format!(
        "GRANT USAGE ON SCHEMA {{schema}} TO {g};
         GRANT SELECT ON {{schema}}.schema_migrations TO {g};
         GRANT SELECT ON {{schema}}.command_keys TO {g};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA {{schema}} TO {g};"
    );
    // Workers and operators both change commands only through transitions
    // (`transitions_apply.sql`), which write these columns.
    // The transition that ends a batch's last member stores its completion.
    let transitions = format!(
        "GRANT SELECT, UPDATE ({TRANSITION_COLUMNS}) ON {{schema}}.commands TO {g};
         GRANT INSERT ON {{schema}}.commands TO {g};
         GRANT SELECT, UPDATE (remaining, completed, failed, canceled, finished_at, completed_ids, failed_ids, canceled_ids) ON {{schema}}.batches TO {g};"
    );
    let specific = match role {
        Role::Sender => format!(
            "GRANT SELECT, INSERT ON {{schema}}.commands TO {g};
             GRANT SELECT, INSERT ON {{schema}}.batches TO {g};
             GRANT SELECT ON {{schema}}.processes TO {g};
             GRANT SELECT ON {{schema}}.audit TO {g};
             GRANT SELECT ON {{schema}}.audit_trail TO {g};
             GRANT SELECT, UPDATE (consumed_at) ON {{schema}}.replies TO {g};
             GRANT SELECT, INSERT, UPDATE (last_seen_at) ON {{schema}}.command_types TO {g};"
        ),
        Role::Worker => format!(
            "{transitions}
             GRANT UPDATE (leased_by) ON {{schema}}.commands TO {g};
             GRANT INSERT ON {{schema}}.batches TO {g};
             GRANT SELECT, INSERT, UPDATE (status, state, awaiting, compensations, last_error, version, updated_at, finished_at) ON {{schema}}.processes TO {g};
             GRANT SELECT ON {{schema}}.pauses TO {g};
             GRANT SELECT, UPDATE (in_flight, tokens, refilled_at) ON {{schema}}.limits TO {g};
             GRANT INSERT ON {{schema}}.audit TO {g};
             GRANT SELECT, INSERT ON {{schema}}.replies TO {g};
             GRANT SELECT, INSERT, UPDATE (last_seen_at, last_served_at) ON {{schema}}.command_types TO {g};"
        ),
        Role::Operator => format!(
            "{transitions}
             GRANT SELECT, INSERT ON {{schema}}.audit TO {g};
             GRANT SELECT ON {{schema}}.audit_trail TO {g};
             GRANT SELECT, INSERT ON {{schema}}.replies TO {g};
             GRANT SELECT, INSERT ON {{schema}}.operator_actions TO {g};
             GRANT UPDATE (payload) ON {{schema}}.commands TO {g};
             GRANT SELECT, INSERT, DELETE ON {{schema}}.pauses TO {g};
             GRANT SELECT, INSERT, UPDATE, DELETE ON {{schema}}.limits TO {g};
             GRANT SELECT ON {{schema}}.command_types TO {g};
             GRANT SELECT ON {{schema}}.processes TO {g};"
        ),
    };
    Ok(schema.render(&format!("{common}\n{specific}")))
}
