//! Expansion tests run in-process, so the macro crate's own coverage is
//! measured; `tests/ui` checks what users see through rustc.

use proc_macro2::TokenStream;
use quote::quote;

fn render(tokens: &TokenStream) -> String {
    tokens.to_string()
}

fn errors(tokens: &TokenStream) -> Vec<String> {
    let text = render(tokens);
    text.split("compile_error !")
        .skip(1)
        .map(|s| s.split("\" }").next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn command_expands_to_derives_and_impl() {
    let out = crate::command::expand(
        quote!(
            domain = "payments",
            name = "Debit",
            reply = u64,
            max_attempts = 5,
            backoff = ["250ms", "10s", "5m", "1h"]
        ),
        quote!(
            struct DebitAccount {
                amount: i64,
            }
        ),
    );
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    for expected in [
        ":: cmdbus :: __private :: serde :: Serialize",
        ":: cmdbus :: __private :: schemars :: JsonSchema",
        "impl :: cmdbus :: Command for DebitAccount",
        "const DOMAIN : & 'static str = \"payments\"",
        "const NAME : & 'static str = \"Debit\"",
        "type Reply = u64",
        "const MAX_ATTEMPTS : u32 = 5u32",
        "with_backoff_millis (& [250u64 , 10000u64 , 300000u64 , 3600000u64])",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
}

#[test]
fn command_keeps_derives_the_user_wrote_and_defaults_name_and_reply() {
    let out = crate::command::expand(
        quote!(domain = "payments"),
        quote!(
            #[derive(Serialize, serde::Deserialize, schemars::JsonSchema)]
            enum Refund {
                Full,
            }
        ),
    );
    let text = render(&out);
    assert!(!text.contains("__private :: serde :: Serialize"), "{text}");
    assert!(!text.contains("retry_policy"), "{text}");
    assert!(text.contains("const NAME : & 'static str = \"Refund\""), "{text}");
    assert!(text.contains("type Reply = ()"), "{text}");
}

#[test]
fn command_reports_every_mistake_at_once() {
    let out = crate::command::expand(
        quote!(
            domain = "Pay",
            domain = "x",
            name = "",
            max_attempts = 0,
            backoff = [],
            retries = 3,
            flag
        ),
        quote!(
            struct Debit {}
        ),
    );
    let found = errors(&out);
    let text = found.join("\n");
    for expected in [
        "invalid domain",
        "duplicate #[command] key `domain`",
        "invalid command name",
        "max_attempts",
        "at least one delay",
        "unknown #[command] key",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    // The impl is still emitted, with placeholders.
    assert!(render(&out).contains("impl :: cmdbus :: Command for Debit"));
}

#[test]
fn command_refuses_bad_shapes_and_bad_delays() {
    let missing = crate::command::expand(
        quote!(),
        quote!(
            struct Debit {}
        ),
    );
    assert!(errors(&missing)[0].contains("needs a `domain` key"));
    let generic = crate::command::expand(
        quote!(domain = "p"),
        quote!(
            struct Debit<T> {
                t: T,
            }
        ),
    );
    assert!(errors(&generic)[0].contains("cannot be generic"));
    assert!(!render(&generic).contains("impl :: cmdbus :: Command"));
    let union = crate::command::expand(quote!(domain = "p"), quote!(union U { a: u8 }));
    assert!(errors(&union)[0].contains("cannot be a union"));
    let not_item = crate::command::expand(
        quote!(domain = "p"),
        quote!(
            fn f() {}
        ),
    );
    assert!(errors(&not_item)[0].contains("struct or an enum"));
    for delay in
        [quote!("soon"), quote!(5), quote!("10d"), quote!("s"), quote!("99999999999999999999h")]
    {
        let out = crate::command::expand(
            quote!(domain = "p", backoff = [#delay]),
            quote!(
                struct D {}
            ),
        );
        assert!(errors(&out).iter().any(|e| e.contains("malformed backoff delay")), "{delay}");
    }
    let bad_ident = crate::command::expand(
        quote!(domain = "p"),
        quote!(
            struct _Debit {}
        ),
    );
    assert!(errors(&bad_ident)[0].contains("set `name"));
}

#[test]
fn handler_expands_to_a_registration() {
    let out = crate::handler::expand(
        quote!(),
        quote!(
            async fn debit(cmd: Debit, ctx: &mut HandlerContext) -> Result<u64, HandlerError> {
                Ok(1)
            }
        ),
    );
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    assert!(text.contains("inventory :: submit !"), "{text}");
    assert!(text.contains("decode :: < Debit >"), "{text}");
    assert!(text.contains("HandlerOutput < Debit >"), "{text}");
    let without_ctx = crate::handler::expand(
        quote!(),
        quote!(
            async fn close(cmd: Close) -> Result<(), E> {
                Ok(())
            }
        ),
    );
    assert!(render(&without_ctx).contains("let _ = ctx ; close (cmd)"));
}

#[test]
fn handler_reports_signature_mistakes() {
    let cases = [
        (
            quote!(
                fn f(c: C) -> Result<(), E> {
                    Ok(())
                }
            ),
            "must be an `async fn`",
        ),
        (
            quote!(
                async fn f<T>(c: T) -> Result<(), E> {
                    Ok(())
                }
            ),
            "cannot be generic",
        ),
        (
            quote!(
                async fn f(&self, c: C) -> Result<(), E> {
                    Ok(())
                }
            ),
            "cannot take `self`",
        ),
        (
            quote!(
                async fn f(c: C) {}
            ),
            "must return",
        ),
        (
            quote!(
                async fn f() -> Result<(), E> {
                    Ok(())
                }
            ),
            "takes the command",
        ),
        (
            quote!(
                async fn f(a: A, b: B, c: C) -> Result<(), E> {
                    Ok(())
                }
            ),
            "takes the command",
        ),
        (
            quote!(
                struct NotAFunction;
            ),
            "applies to an `async fn`",
        ),
    ];
    for (input, expected) in cases {
        let out = crate::handler::expand(quote!(), input.clone());
        assert!(errors(&out).iter().any(|e| e.contains(expected)), "{input}: {}", render(&out));
        assert!(!render(&out).contains("inventory"), "no registration for {input}");
    }
    let args = crate::handler::expand(
        quote!(retries = 3),
        quote!(
            async fn f(c: C) -> Result<(), E> {
                Ok(())
            }
        ),
    );
    assert!(errors(&args)[0].contains("takes no arguments"));
}

#[test]
fn reply_adds_serde_derives() {
    let out = crate::reply::expand(
        quote!(),
        quote!(
            struct Receipt {
                cents: i64,
            }
        ),
    );
    assert!(render(&out).contains("__private :: serde :: Deserialize"));
    let args = crate::reply::expand(
        quote!(x),
        quote!(
            struct Receipt;
        ),
    );
    assert!(errors(&args)[0].contains("takes no arguments"));
    let not_item = crate::reply::expand(
        quote!(),
        quote!(
            fn f() {}
        ),
    );
    assert!(errors(&not_item)[0].contains("struct or an enum"));
    let all = crate::reply::expand(
        quote!(),
        quote!(
            #[derive(Serialize, Deserialize, JsonSchema)]
            struct R;
        ),
    );
    assert!(!render(&all).contains("__private"));
}

#[test]
fn names_follow_the_runtime_rules() {
    assert!(crate::names::domain_error("payments").is_none());
    assert!(crate::names::domain_error(&"a".repeat(64)).unwrap().contains("too long"));
    assert!(crate::names::domain_error("1x").unwrap().contains("start with"));
    assert!(crate::names::name_error("Debit.v2").is_none());
    assert!(crate::names::name_error("Débit").unwrap().contains("not allowed"));
}

#[test]
fn derive_command_implements_serialization_through_a_private_copy() {
    let out = crate::command::derive(quote!(
        /// Debits.
        #[command(domain = "payments", max_attempts = 2)]
        #[command(name = "Debit")]
        #[serde(crate = "somewhere", rename_all = "camelCase")]
        #[allow(unused)]
        pub struct DebitAccount {
            /// The account.
            #[serde(rename = "acct")]
            #[allow(unused)]
            pub account: String,
        }
    ));
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    for expected in [
        "struct __CmdbusSerdeDebitAccount",
        "remote = \"DebitAccount\"",
        "rename = \"DebitAccount\"",
        "# [serde (rename_all = \"camelCase\")]",
        "# [serde (rename = \"acct\")] account : String",
        "impl :: cmdbus :: __private :: serde :: Serialize for DebitAccount",
        "impl < 'de > :: cmdbus :: __private :: serde :: Deserialize < 'de > for DebitAccount",
        "impl :: cmdbus :: __private :: schemars :: JsonSchema for DebitAccount",
        "impl :: cmdbus :: Command for DebitAccount",
        "const NAME : & 'static str = \"Debit\"",
        "const MAX_ATTEMPTS : u32 = 2u32",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    // The copy drops the user's `crate` key, other attributes and visibility.
    assert!(!text.contains("\"somewhere\""), "{text}");
    assert!(!text.contains("allow (unused)"), "{text}");
    assert!(!text.contains("pub account"), "{text}");
}

#[test]
fn derive_command_keeps_a_container_rename_and_enum_variant_attributes() {
    let out = crate::command::derive(quote!(
        #[command(domain = "payments")]
        #[serde(rename = "refund.v2", tag = "kind")]
        enum Refund {
            #[serde(rename = "all")]
            Full,
            Partial {
                #[serde(default)]
                cents: i64,
            },
            Odd(#[serde(skip)] u8, u8),
        }
    ));
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    assert!(!text.contains("rename = \"Refund\""), "the user's rename wins: {text}");
    assert!(text.contains("# [serde (rename = \"all\")] Full"), "{text}");
    assert!(text.contains("# [serde (default)] cents : i64"), "{text}");
    assert!(text.contains("# [serde (skip)] u8"), "{text}");
}

#[test]
fn derive_command_with_manual_serde_implements_only_command() {
    let out = crate::command::derive(quote!(
        #[command(domain = "billing", manual_serde)]
        struct Invoice {
            number: u32,
        }
    ));
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    assert!(text.contains("impl :: cmdbus :: Command for Invoice"), "{text}");
    assert!(!text.contains("__CmdbusSerde"), "{text}");
}

#[test]
fn derive_command_reports_mistakes_and_still_emits_impls() {
    let missing = crate::command::derive(quote!(
        struct NoKeys {}
    ));
    assert_eq!(errors(&missing).len(), 1, "{}", render(&missing));
    assert!(render(&missing).contains("needs a `domain` key"));
    assert!(render(&missing).contains("impl :: cmdbus :: Command for NoKeys"), "fails softly");

    let several = crate::command::derive(quote!(
        #[command = "payments"]
        #[command(domain = "payments", manual_serde, manual_serde, retries = 3)]
        #[derive(Serialize)]
        struct Bad {}
    ));
    let found = errors(&several);
    assert!(found.iter().any(|e| e.contains("expected #[command(domain")), "{found:?}");
    assert!(
        found.iter().any(|e| e.contains("duplicate #[command] key `manual_serde`")),
        "{found:?}"
    );
    assert!(found.iter().any(|e| e.contains("unknown #[command] key")), "{found:?}");

    let own = crate::command::derive(quote!(
        #[command(domain = "payments")]
        #[derive(Debug, serde::Deserialize)]
        struct Own {}
    ));
    assert!(
        errors(&own).iter().any(|e| e.contains("derives `Deserialize` itself")),
        "{}",
        render(&own)
    );

    for (shape, expected) in [
        (quote!(#[command(domain = "p")] union U { a: u8 }), "cannot be a union"),
        (
            quote!(
                #[command(domain = "p")]
                struct G<T> {
                    t: T,
                }
            ),
            "cannot be generic",
        ),
    ] {
        let out = crate::command::derive(shape);
        assert!(errors(&out).iter().any(|e| e.contains(expected)), "{}", render(&out));
        assert!(
            !render(&out).contains("impl :: cmdbus :: Command"),
            "no impl for an impossible shape"
        );
    }
    let not_an_item = crate::command::derive(quote!(
        fn f() {}
    ));
    assert!(!errors(&not_an_item).is_empty());
}

#[test]
fn derive_payload_serializes_and_refuses_what_it_cannot_carry() {
    let out = crate::payload::derive(quote!(
        #[serde(schemars_is_not_this = 1, rename_all = "camelCase")]
        #[serde(crate = "x")]
        #[schemars(crate = "y")]
        struct Address {
            city: String,
        }
    ));
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    assert!(text.contains("struct __CmdbusSerdeAddress"), "{text}");
    assert!(
        text.contains("impl :: cmdbus :: __private :: serde :: Serialize for Address"),
        "{text}"
    );
    assert!(!text.contains("\"x\"") && !text.contains("\"y\""), "{text}");
    assert!(!text.contains("impl :: cmdbus :: Command"), "{text}");

    // A malformed serde attribute is kept for serde to report.
    let odd = crate::payload::derive(quote!(
        #[serde(rename_all)]
        #[serde = "odd"]
        struct Odd {}
    ));
    assert!(render(&odd).contains("# [serde = \"odd\"]"), "{}", render(&odd));

    for (shape, expected) in [
        (quote!(union U { a: u8 }), "a payload cannot be a union"),
        (
            quote!(
                struct G<T> {
                    t: T,
                }
            ),
            "does not support generic types",
        ),
    ] {
        let out = crate::payload::derive(shape);
        assert!(errors(&out).iter().any(|e| e.contains(expected)), "{}", render(&out));
    }
    assert!(
        !errors(&crate::payload::derive(quote!(
            fn f() {}
        )))
        .is_empty()
    );
}

#[test]
fn timeout_becomes_a_constant_and_must_be_a_positive_duration() {
    let out = crate::command::derive(quote!(
        #[command(domain = "payments", timeout = "5m")]
        struct Slow {}
    ));
    assert!(errors(&out).is_empty(), "{}", render(&out));
    assert!(render(&out).contains("Duration :: from_millis (300000u64)"), "{}", render(&out));
    for bad in ["soon", "0s"] {
        let out = crate::command::derive(quote!(
            #[command(domain = "payments", timeout = #bad)]
            struct Slow {}
        ));
        assert!(errors(&out).iter().any(|e| e.contains("malformed timeout")), "{}", render(&out));
    }
}

#[test]
fn every_field_type_is_checked_unless_serde_handles_it() {
    let out = crate::command::derive(quote!(
        #[command(domain = "orders")]
        enum Order {
            Place { lines: Vec<Line> },
            Note(#[serde(skip)] Cache, #[serde(with = "my_format")] Stamp),
            Cancel,
        }
    ));
    let text = render(&out);
    assert!(errors(&out).is_empty(), "{text}");
    let checked = |ty: &str| text.contains(&format!("Field :: < {ty} > :: new ()"));
    assert!(checked("Vec < Line >"), "{text}");
    assert!(!checked("Cache") && !checked("Stamp"), "{text}");
}
