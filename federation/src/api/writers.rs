//! Who may change which service through the catalog API: a workload
//! registers, updates and removes instances of its own service only (the
//! one its SPIFFE ID `spiffe://<td>/ns/<namespace>/sa/<name>` names);
//! callers matching the gateway's `[api] admins` may change any service.

use meshgw_config::CallerPattern;
use tonic::Status;

/// The API's write policy.
#[derive(Debug, Clone)]
pub enum WritePolicy {
    /// Any authenticated caller may change any service (the library
    /// default, for embedding and tests; the gateway uses [`WritePolicy::Own`]).
    Open,
    /// Each workload its own service; `admins` every service.
    Own {
        /// The mesh's trust domain, which workload IDs are in.
        trust_domain: String,
        /// Callers allowed to change any service.
        admins: Vec<CallerPattern>,
    },
}

impl WritePolicy {
    /// Whether any caller may change any service.
    pub fn is_open(&self) -> bool {
        matches!(self, WritePolicy::Open)
    }

    /// Whether `caller` (the SPIFFE ID of its certificate, if any) may
    /// change service `namespace/name`; the refusal names the caller, the
    /// service and the way to allow it.
    pub fn check(&self, caller: Option<&str>, namespace: &str, name: &str) -> Result<(), Status> {
        let WritePolicy::Own {
            trust_domain,
            admins,
        } = self
        else {
            return Ok(());
        };
        let Some(caller) = caller else {
            return Err(Status::permission_denied(format!(
                "changing {namespace}/{name} needs a client certificate with a SPIFFE ID (`meshgw ca workload`)"
            )));
        };
        let own = format!("spiffe://{trust_domain}/ns/{namespace}/sa/{name}");
        if caller == own || admins.iter().any(|p| p.matches(caller)) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{caller} may not change {namespace}/{name}: a workload may register, update and remove only its own service ({own}); list the caller in the gateway's [api] admins to let it manage every service"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_change_their_own_service_and_admins_any() {
        let p = WritePolicy::Own {
            trust_domain: "m.test".into(),
            admins: vec![CallerPattern::parse("spiffe://m.test/ns/ops/*").unwrap()],
        };
        let orders = Some("spiffe://m.test/ns/shop/sa/orders");
        assert!(p.check(orders, "shop", "orders").is_ok());
        let e = p.check(orders, "shop", "payments").unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message()
                .contains("spiffe://m.test/ns/shop/sa/orders may not change shop/payments")
                && e.message().contains("[api] admins"),
            "{}",
            e.message()
        );
        assert!(
            p.check(orders, "other", "orders").is_err(),
            "another namespace"
        );
        let other_td = Some("spiffe://x.test/ns/shop/sa/orders");
        assert!(
            p.check(other_td, "shop", "orders").is_err(),
            "another trust domain"
        );
        assert!(
            p.check(Some("spiffe://m.test/ns/ops/sa/deploy"), "shop", "payments")
                .is_ok()
        );
        assert!(p.check(None, "shop", "orders").is_err());
        assert!(WritePolicy::Open.check(None, "shop", "orders").is_ok());
    }
}
