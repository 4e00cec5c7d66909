//! Does throughput hold as the tables grow? Pre-fills finished commands as
//! cmdbus writes them (happy-path audit events on the row, one reply each),
//! then measures end to end.

use sqlx::AssertSqlSafe;

use crate::{Config, drop_schema, e2e_rate, fresh_bus};

pub(crate) async fn e2e_with_history(config: &Config, finished: u64) -> f64 {
    let bus = fresh_bus(&config.url).await;
    let s = bus.transport().schema().to_owned();
    let fill = format!(
        r#"INSERT INTO "{s}".commands (domain, command_id, command_type, correlation_id, reply_to, status,
                attempts, max_attempts, payload, created_at, updated_at, received_at, finished_at)
           SELECT 'bench', id, 'Noop', id, 'default', 'COMPLETED', 1, 3, '{{"sent_at_us": 0}}',
                  now() - interval '1 day', now() - interval '1 day', now() - interval '1 day',
                  now() - interval '1 day'
           FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) g;
           INSERT INTO "{s}".replies (domain, command_id, correlation_id, reply_to, status, body)
           SELECT domain, command_id, correlation_id, reply_to, 'SUCCESS', 'null' FROM "{s}".commands;
           ANALYZE "{s}".commands; ANALYZE "{s}".audit; ANALYZE "{s}".replies;"#
    );
    let fill = fill.replace("$1", &finished.to_string());
    sqlx::raw_sql(AssertSqlSafe(fill)).execute(bus.pool()).await.expect("history fill");
    let rate = e2e_rate(config, &bus, config.senders, 1).await;
    drop_schema(&bus).await;
    rate
}
