//! ancm's own direct children that an owner waits for (the app's processes, whose statuses
//! tokio collects, the process guard, the `--user` file opener): registered here so that the
//! orphan reaper (`supervisor::platform::orphans`) takes every other child of ancm for an
//! orphan of the app's tree, and never reaps one whose owner waits for it.
//!
//! A leaf: it imports nothing of the crate, so whoever spawns can register without depending
//! on the supervisor.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Direct children that have an owner waiting for them.
static OWNED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
/// Spawns under way: their child may exist before it is registered.
static SPAWNING: AtomicUsize = AtomicUsize::new(0);
/// Bumped when a spawn ends, so a scan that overlapped one is not trusted.
static SPAWNED: AtomicU64 = AtomicU64::new(0);

/// Held around a spawn until the child is registered with [`owned`].
pub(crate) struct Spawning(());

impl Spawning {
    pub(crate) fn begin() -> Spawning {
        SPAWNING.fetch_add(1, Ordering::SeqCst);
        Spawning(())
    }
}

impl Drop for Spawning {
    fn drop(&mut self) {
        SPAWNED.fetch_add(1, Ordering::SeqCst);
        SPAWNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Registers a direct child whose owner waits for it.
pub(crate) fn owned(pid: u32) {
    if let Ok(mut owned) = OWNED.lock() {
        owned.get_or_insert_with(HashSet::new).insert(pid);
    }
}

/// Unregisters a direct child once its owner has reaped it.
pub(crate) fn released(pid: u32) {
    if let Ok(mut owned) = OWNED.lock() {
        if let Some(owned) = owned.as_mut() {
            owned.remove(&pid);
        }
    }
}

/// Whether `pid` is a registered child; when the registry cannot be read, yes (an owned
/// child must never be reaped by mistake).
pub(crate) fn is_owned(pid: u32) -> bool {
    OWNED
        .lock()
        .map(|o| o.as_ref().is_some_and(|o| o.contains(&pid)))
        .unwrap_or(true)
}

/// A look at ancm's children that no spawn overlapped: one begun while a spawn was under way,
/// or during which one ended, may have seen a child before its registration.
pub(crate) struct Scan(u64);

impl Scan {
    /// `None` while a spawn is under way.
    pub(crate) fn begin() -> Option<Scan> {
        let before = SPAWNED.load(Ordering::SeqCst);
        (SPAWNING.load(Ordering::SeqCst) == 0).then_some(Scan(before))
    }

    /// Whether no spawn began or ended since [`Scan::begin`].
    pub(crate) fn undisturbed(&self) -> bool {
        SPAWNING.load(Ordering::SeqCst) == 0 && SPAWNED.load(Ordering::SeqCst) == self.0
    }
}
