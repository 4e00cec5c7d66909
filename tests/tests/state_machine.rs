//! Property test of the status state machine: random sequences of
//! operations, on both transports, never reach an illegal state and agree
//! with a simple model after every step.

use std::time::Duration;

use cmdbus::backend::{
    CommandsLease, LeaseRef, LeasedCommand, NewCommand, Outcome, OutcomeKind, RecordResult,
    TsqReason,
};
use cmdbus::{
    CommandKey, CommandStatus, ErrorKind, Failure, Operator, Transport, testing::MemoryTransport,
};
use proptest::prelude::*;
use uuid::Uuid;

const DOMAIN: &str = "model";
const MAX_ATTEMPTS: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    /// Send command `i` (again, possibly).
    Send(usize),
    /// Lease everything due; `expired` leases run out at once.
    Lease {
        expired: bool,
    },
    /// Record an outcome for the lease held on command `i`, if any.
    Record(usize, Kind),
    /// Release the lease held on command `i`, if any.
    Release(usize),
    /// Run the rescuer.
    Rescue,
    /// Operator retry / cancel of command `i`.
    Retry(usize),
    Cancel(usize),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Complete,
    BusinessRule,
    Transient,
    Permanent,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(Kind::Complete),
        Just(Kind::BusinessRule),
        Just(Kind::Transient),
        Just(Kind::Permanent)
    ];
    prop_oneof![
        (0..3usize).prop_map(Op::Send),
        any::<bool>().prop_map(|expired| Op::Lease { expired }),
        ((0..3usize), kind).prop_map(|(i, k)| Op::Record(i, k)),
        (0..3usize).prop_map(Op::Release),
        Just(Op::Rescue),
        (0..3usize).prop_map(Op::Retry),
        (0..3usize).prop_map(Op::Cancel),
    ]
}

/// What the model expects of one command.
#[derive(Clone, Debug)]
struct Model {
    status: CommandStatus,
    attempts: u32,
    lease: Option<LeasedCommand>,
    lease_expired: bool,
}

fn operator() -> Operator {
    Operator::new("model").expect("operator")
}

async fn run<T: Transport>(transport: &T, ops: &[Op]) {
    let tsq = cmdbus::Bus::new(transport.clone()).troubleshooting();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut models: Vec<Option<Model>> = vec![None, None, None];
    let failure = |kind| Failure::new(kind, "Model", "model", "model failure", None);
    for op in ops {
        match op.clone() {
            Op::Send(i) => {
                let command = NewCommand::new(
                    DOMAIN.into(),
                    "Step".into(),
                    ids[i],
                    ids[i],
                    "default".into(),
                    MAX_ATTEMPTS,
                    serde_json::value::to_raw_value(&i).expect("json"),
                );
                let outcome = transport.commands_send(vec![command]).await.expect("send");
                assert_eq!(outcome[0].is_duplicate(), models[i].is_some());
                if models[i].is_none() {
                    models[i] = Some(Model {
                        status: CommandStatus::Pending,
                        attempts: 0,
                        lease: None,
                        lease_expired: false,
                    });
                }
            }
            Op::Lease { expired } => {
                let visibility = if expired { Duration::ZERO } else { Duration::from_secs(60) };
                let params =
                    CommandsLease::new(vec![DOMAIN.into()], 10, visibility, "model".into());
                let leased = transport.commands_lease(params).await.expect("lease");
                for command in leased {
                    let i = ids.iter().position(|id| *id == command.command_id).expect("known id");
                    let model = models[i].as_mut().expect("sent");
                    model.status =
                        model.status.transition(CommandStatus::InProgress).expect("legal lease");
                    model.attempts += 1;
                    assert_eq!(command.attempt, model.attempts);
                    model.lease = Some(command);
                    model.lease_expired = expired;
                }
                // Everything the model holds as due was leased.
                for model in models.iter().flatten() {
                    assert_ne!(
                        model.status,
                        CommandStatus::Pending,
                        "a due command was not leased"
                    );
                }
            }
            Op::Record(i, kind) => {
                let Some(model) = models[i].as_mut() else { continue };
                let Some(lease) = model.lease.clone() else { continue };
                let (outcome, next) = match kind {
                    Kind::Complete => (
                        OutcomeKind::Completed {
                            reply: serde_json::value::to_raw_value(&1).expect("json"),
                        },
                        CommandStatus::Completed,
                    ),
                    Kind::BusinessRule => (
                        OutcomeKind::Failed { failure: failure(ErrorKind::BusinessRule) },
                        CommandStatus::Failed,
                    ),
                    Kind::Transient if model.attempts >= MAX_ATTEMPTS => (
                        OutcomeKind::Troubleshoot {
                            failure: failure(ErrorKind::Transient),
                            reason: TsqReason::RetriesExhausted,
                        },
                        CommandStatus::InTroubleshootingQueue,
                    ),
                    Kind::Transient => (
                        OutcomeKind::Retry {
                            failure: failure(ErrorKind::Transient),
                            delay: Duration::ZERO,
                        },
                        CommandStatus::Pending,
                    ),
                    Kind::Permanent => (
                        OutcomeKind::Troubleshoot {
                            failure: failure(ErrorKind::Permanent),
                            reason: TsqReason::Permanent,
                        },
                        CommandStatus::InTroubleshootingQueue,
                    ),
                };
                let held = model.status == CommandStatus::InProgress;
                let result = transport
                    .commands_record(&[Outcome::new(LeaseRef::of(&lease), lease.attempt, outcome)])
                    .await
                    .expect("record");
                if held {
                    assert_eq!(result, [RecordResult::Recorded]);
                    model.status = model.status.transition(next).expect("legal outcome");
                } else {
                    assert_eq!(result, [RecordResult::LeaseLost]);
                }
                model.lease = None;
            }
            Op::Release(i) => {
                let Some(model) = models[i].as_mut() else { continue };
                let Some(lease) = model.lease.take() else { continue };
                let released =
                    transport.leases_release(vec![LeaseRef::of(&lease)]).await.expect("release");
                if model.status == CommandStatus::InProgress {
                    assert_eq!(released, 1);
                    model.status =
                        model.status.transition(CommandStatus::Pending).expect("legal release");
                    model.attempts -= 1;
                } else {
                    assert_eq!(released, 0);
                }
            }
            Op::Rescue => {
                let rescued = transport.leases_rescue().await.expect("rescue");
                let mut expected = 0;
                for model in models.iter_mut().flatten() {
                    if model.status == CommandStatus::InProgress && model.lease_expired {
                        expected += 1;
                        let next = if model.attempts >= MAX_ATTEMPTS {
                            CommandStatus::InTroubleshootingQueue
                        } else {
                            CommandStatus::Pending
                        };
                        model.status = model.status.transition(next).expect("legal rescue");
                    }
                }
                assert_eq!(rescued, expected);
            }
            Op::Retry(i) | Op::Cancel(i) => {
                let Some(model) = models[i].as_mut() else { continue };
                let is_retry = matches!(op, Op::Retry(_));
                let (id, operator) = (CommandKey::new(DOMAIN, ids[i]), operator());
                let result = if is_retry {
                    tsq.retry(id, &operator).await
                } else {
                    tsq.cancel(id, &operator, "model").await
                };
                let next = if is_retry { CommandStatus::Pending } else { CommandStatus::Canceled };
                // Operators act only on the troubleshooting queue.
                let legal = (model.status == CommandStatus::InTroubleshootingQueue)
                    .then(|| model.status.transition(next))
                    .and_then(Result::ok);
                match legal.ok_or(()) {
                    Ok(next) => {
                        result.expect("legal operator action succeeds");
                        model.status = next;
                        if is_retry {
                            model.attempts = 0;
                        }
                    }
                    Err(_) => assert!(result.is_err(), "an illegal operator action was accepted"),
                }
            }
        }
        for (i, model) in models.iter().enumerate() {
            let stored = transport.command_get(DOMAIN, ids[i]).await.expect("get");
            match (model, stored) {
                (None, None) => {}
                (Some(model), Some(stored)) => {
                    assert_eq!(
                        (stored.status, stored.attempts),
                        (model.status, model.attempts),
                        "after {op:?}"
                    );
                }
                (model, stored) => panic!("model {model:?} vs stored {stored:?}"),
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn memory_transport_follows_the_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            run(&MemoryTransport::new(), &ops).await;
        });
    }

    #[test]
    fn postgres_transport_follows_the_model(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            run(cmdbus_tests::pg_bus().await.transport(), &ops).await;
        });
    }
}
