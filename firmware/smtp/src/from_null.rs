//! Messages the server itself sends from the null sender `<>` (RFC 5321
//! §4.5.5): delivery status notifications and auto-replies. Each goes into
//! the recipient's INBOX when the address is local, else into the queue.

use pochta_store::{
    CatchAll, Delivery, DeliveryError, LocalRecipient, QueuedRecipient, Receipt, Resolution, Store,
};

/// Commits `message` from `<>` to `to`. Blocking (store work).
pub(crate) fn submit(store: &Store, to: &str, message: &[u8]) -> Result<Receipt, String> {
    let (local, remote) = match store
        .resolve(to, CatchAll::Use)
        .map_err(|e| e.to_string())?
    {
        Resolution::Deliver { accounts, remote } => (
            accounts
                .into_iter()
                .map(|(account, address)| LocalRecipient {
                    account,
                    address,
                    folder: "INBOX".into(),
                })
                .collect(),
            remote,
        ),
        Resolution::NotLocal => (Vec::new(), vec![to.to_owned()]),
        Resolution::Unknown => return Err(format!("{to} has no mailbox here")),
        #[allow(unreachable_patterns)]
        _ => return Err(format!("{to}: unknown resolution")),
    };
    let mut w = store.blob_writer().map_err(|e| e.to_string())?;
    w.write(message).map_err(|e| e.to_string())?;
    let staged = w.finish().map_err(|e| e.to_string())?;
    let delivery = Delivery {
        sender: String::new(),
        local,
        remote: remote
            .into_iter()
            .map(|address| QueuedRecipient {
                address,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    store.deliver(staged, delivery).map_err(|e| match e {
        DeliveryError::QuotaExceeded(who) => format!("mailbox of {who} is full"),
        e => e.to_string(),
    })
}
