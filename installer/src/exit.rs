//! The one place where errors become exit codes (documented in README, "Exit codes").

use ferry_format::archive::BundleError;
use ferry_format::report::Code;
use ferry_format::verify::VerifyError;

/// A precondition of the host or the invocation is not met (exit 4): nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Precondition(pub String);

/// The new release did not become healthy and the previous one was restored (exit 5).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RolledBack(pub String);

pub fn code(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if cause.is::<Precondition>() {
            return Code::PreconditionNotMet;
        }
        if cause.is::<RolledBack>() {
            return Code::UnhealthyRolledBack;
        }
        if let Some(v) = cause.downcast_ref::<VerifyError>() {
            return if v.is_verification() {
                Code::VerificationFailed
            } else {
                Code::Failed
            };
        }
        if cause.is::<crate::kit::Usage>() {
            return Code::Usage;
        }
        if let Some(k) = cause.downcast_ref::<ferry_format::kit::KitError>() {
            return if k.is_verification() {
                Code::VerificationFailed
            } else {
                Code::Failed
            };
        }
        if cause.is::<ferry_format::trust::TrustError>() {
            return Code::VerificationFailed;
        }
        if let Some(b) = cause.downcast_ref::<BundleError>() {
            return if b.is_verification() {
                Code::VerificationFailed
            } else {
                Code::Failed
            };
        }
    }
    Code::Failed
}
