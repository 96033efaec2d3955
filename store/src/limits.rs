//! Typed limits with named defaults: page sizes, the size of attribute documents, the length of
//! names, and how long invitations live. The store checks them before touching the database.

use time::Duration;

/// Default number of rows in a page.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a caller may ask for.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Largest JSON attribute document (user, company or invitation attrs, audit details), in bytes.
pub const MAX_ATTRS_BYTES: usize = 64 * 1024;
/// Longest id, login, email, name, role or flag, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Most levels of an enterprise's company tree followed (user limits, roots).
pub const MAX_ENTERPRISE_DEPTH: usize = 64;
/// Default invitation lifetime (the customs portal uses 7 days, the load planner 14).
pub const DEFAULT_INVITATION_TTL: Duration = Duration::days(14);

/// The limits a store enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Rows in a page when the caller does not say.
    pub default_page_size: u32,
    /// Most rows in a page.
    pub max_page_size: u32,
    /// Largest JSON attribute document, in bytes.
    pub max_attrs_bytes: usize,
    /// Longest identifier or name, in bytes.
    pub max_name_bytes: usize,
    /// Lifetime of an invitation when the caller does not say.
    pub invitation_ttl: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            default_page_size: DEFAULT_PAGE_SIZE,
            max_page_size: MAX_PAGE_SIZE,
            max_attrs_bytes: MAX_ATTRS_BYTES,
            max_name_bytes: MAX_NAME_BYTES,
            invitation_ttl: DEFAULT_INVITATION_TTL,
        }
    }
}

impl StoreLimits {
    /// The page size to use for a request.
    pub(crate) fn page(&self, asked: Option<u32>) -> i64 {
        i64::from(
            asked
                .unwrap_or(self.default_page_size)
                .clamp(1, self.max_page_size),
        )
    }
}
