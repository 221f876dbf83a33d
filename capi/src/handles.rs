//! Handle registries (ids, never pointers, so a stale handle is caught, not
//! dereferenced), the strings handed to the caller, and the error type.

use crate::SottoStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A failed call: its status and message.
pub struct Fail {
    pub status: SottoStatus,
    pub message: String,
}

impl Fail {
    pub fn null(what: &str) -> Fail {
        Fail {
            status: SottoStatus::NullArgument,
            message: format!("{what} is NULL"),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Fail {
        Fail {
            status: SottoStatus::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<sotto::Error> for Fail {
    fn from(e: sotto::Error) -> Fail {
        use sotto::Error as E;
        let status = match &e {
            E::Io { .. } => SottoStatus::Io,
            E::Format { .. } => SottoStatus::Format,
            E::Audio { .. } => SottoStatus::Audio,
            E::Invalid(_) => SottoStatus::InvalidArgument,
            E::Aborted => SottoStatus::Aborted,
            E::Device(_) => SottoStatus::Device,
            _ => SottoStatus::Failed,
        };
        Fail {
            status,
            message: e.to_string(),
        }
    }
}

/// Ids for every kind of handle from one counter: never reused, so a freed
/// handle stays invalid, and a handle of one kind is unknown to the others.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The live objects of one kind by id. Calls clone the `Arc` out, so freeing a
/// handle while another thread uses it only ends the object after that use.
pub struct Registry<T> {
    kind: &'static str,
    map: Mutex<BTreeMap<u64, Arc<T>>>,
}

impl<T> Registry<T> {
    pub const fn new(kind: &'static str) -> Registry<T> {
        Registry {
            kind,
            map: Mutex::new(BTreeMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<T>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, value: T) -> u64 {
        let id = next_id();
        self.map().insert(id, Arc::new(value));
        id
    }

    fn unknown(&self, id: u64) -> Fail {
        Fail {
            status: SottoStatus::InvalidHandle,
            message: match id {
                0 => format!("null {} handle", self.kind),
                _ => format!(
                    "{} handle {id} is not live (freed, or another kind)",
                    self.kind
                ),
            },
        }
    }

    pub fn get(&self, id: u64) -> Result<Arc<T>, Fail> {
        self.map().get(&id).cloned().ok_or_else(|| self.unknown(id))
    }

    pub fn remove(&self, id: u64) -> Result<Arc<T>, Fail> {
        // Dropped by the caller, outside the lock: a model's drop joins threads.
        let removed = self.map().remove(&id);
        removed.ok_or_else(|| self.unknown(id))
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }
}

/// `s` as a C string; NUL bytes (which C cannot carry) become U+FFFD.
pub fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// Addresses of the strings handed out and not yet freed.
static STRINGS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn strings() -> MutexGuard<'static, BTreeSet<usize>> {
    STRINGS.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn give_string(s: &str) -> *mut c_char {
    let p = c_string(s).into_raw();
    strings().insert(p as usize);
    p
}

/// Frees a string from [`give_string`]; anything else is refused untouched.
pub unsafe fn take_string(p: *mut c_char) -> Result<(), Fail> {
    if !strings().remove(&(p as usize)) {
        return Err(Fail {
            status: SottoStatus::InvalidHandle,
            message: "not a string from sotto, or already freed".into(),
        });
    }
    drop(CString::from_raw(p));
    Ok(())
}

pub fn live_strings() -> usize {
    strings().len()
}
