//! Caches for `mail-auth`'s parsed DNS answers. Each holds at most a fixed
//! number of entries and forgets an entry when its TTL runs out, so a flood
//! of mail from ever-new domains cannot grow memory without bound.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::{Parameters, RecordSet, ResolverCache, Txt, MX};

/// One bounded cache.
pub(crate) struct Bounded<K, V> {
    max: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    pub(crate) fn new(max: usize) -> Self {
        Bounded {
            max: max.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ResolverCache<K, V> for Bounded<K, V> {
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            // Still full of live entries: drop the one closest to expiry.
            while map.len() >= self.max {
                let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(key, (value, valid_until));
    }
}

/// The five caches `mail-auth` can use.
pub(crate) struct Caches {
    txt: Bounded<Box<str>, Txt>,
    mx: Bounded<Box<str>, RecordSet<MX>>,
    ipv4: Bounded<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Bounded<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Bounded<IpAddr, RecordSet<Box<str>>>,
}

/// `mail-auth` parameters carrying our caches.
pub(crate) type Params<'x, P> = Parameters<
    'x,
    P,
    Bounded<Box<str>, Txt>,
    Bounded<Box<str>, RecordSet<MX>>,
    Bounded<Box<str>, RecordSet<Ipv4Addr>>,
    Bounded<Box<str>, RecordSet<Ipv6Addr>>,
    Bounded<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    pub(crate) fn new(max: usize) -> Caches {
        Caches {
            txt: Bounded::new(max),
            mx: Bounded::new(max),
            ipv4: Bounded::new(max),
            ipv6: Bounded::new(max),
            ptr: Bounded::new(max),
        }
    }

    pub(crate) fn params<P>(&self, params: P) -> Params<'_, P> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_and_expiring() {
        let c: Bounded<Box<str>, u32> = Bounded::new(3);
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..10u32 {
            c.insert(
                format!("k{i}").into(),
                i,
                later + Duration::from_secs(i as u64),
            );
        }
        assert_eq!(c.len(), 3);
        // The newest survive.
        assert_eq!(c.get("k9"), Some(9));
        assert_eq!(c.get("k0"), None);
        c.insert("old".into(), 1, Instant::now() - Duration::from_secs(1));
        assert_eq!(c.get("old"), None, "an expired entry is not returned");
    }
}
