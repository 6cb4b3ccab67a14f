//! The one place where errors become exit codes.

use ferry_format::archive::BundleError;
use ferry_format::report::Code;
use ferry_format::verify::VerifyError;

/// The command line asks for something impossible that clap cannot see (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Something outside the command line must be fixed first (exit 4), e.g. a secret key
/// file that others can read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Precondition(pub String);

pub fn code(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return Code::Usage;
        }
        if cause.is::<Precondition>() {
            return Code::PreconditionNotMet;
        }
        if let Some(v) = cause.downcast_ref::<VerifyError>() {
            return if v.is_verification() {
                Code::VerificationFailed
            } else {
                Code::Failed
            };
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
