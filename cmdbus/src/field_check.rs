//! The derives' check that every field type is a payload, so that a
//! nested type without `#[derive(Payload)]` is reported in cmdbus's words,
//! at the field, with the fix.
//!
//! `(&Field::<T>::new()).payload_field()` resolves to [`IsPayload`] when `T`
//! serializes and has a schema (method lookup tries that impl first, by
//! value); otherwise to [`NotPayload`] (one autoref later), whose bound
//! `T: NotAPayload` no type meets and whose message names the fix.

use std::marker::PhantomData;

/// A field type under check.
pub struct Field<T>(PhantomData<fn() -> T>);

impl<T> Field<T> {
    /// The check for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// Chosen when the field type is a payload: nothing to report.
pub trait IsPayload {
    /// Passes.
    fn payload_field(&self) {}
}

impl<T> IsPayload for Field<T> where
    T: serde::Serialize + serde::de::DeserializeOwned + schemars::JsonSchema
{
}

/// Implemented by no type: a field type that reaches this bound is not a payload.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a payload, so it cannot be a field of a command or reply",
    label = "put `#[derive(cmdbus::Payload)]` on this field's type",
    note = "a field's type must serialize and describe itself; `#[derive(cmdbus::Payload)]` \
            gives a type of yours both, with no serde or schemars dependency"
)]
pub trait NotAPayload {}

/// Chosen when the field type is not a payload: fails with the fix.
pub trait NotPayload<T> {
    /// Fails to compile, naming the field type.
    fn payload_field(&self)
    where
        T: NotAPayload,
    {
    }
}

impl<T> NotPayload<T> for &Field<T> {}
