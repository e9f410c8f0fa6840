//! The store's range-index order: Lewi–Wu ORE comparison, which needs no
//! key.

use std::cmp::Ordering;

use fluence_store::OreOrder;

pub struct LewiWuOrder;

impl OreOrder for LewiWuOrder {
    /// Recorded in every range table: a file written under another order
    /// is refused rather than searched wrongly.
    const NAME: &'static str = "lewi-wu-v1";

    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        // Ciphertexts are validated on ingress; this fallback only orders
        // bytes that were damaged on disk, deterministically.
        fluence_crypto::ore::ore_compare(a, b).unwrap_or_else(|_| a.cmp(b))
    }

    fn validate(ct: &[u8]) -> bool {
        fluence_crypto::ore::validate(ct).is_ok()
    }

    fn well_formed(ct: &[u8]) -> bool {
        fluence_crypto::ore::check_shape(ct).is_ok()
    }
}
