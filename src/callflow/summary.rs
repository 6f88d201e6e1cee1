//! 8x8's session summary: how a call ended, as the Voice Session Summary webhook reports it.

/// The session statuses 8x8 documents (`sessionStatus`, Session Summary for IVR); a summary with
/// another keeps it as text.
pub const SESSION_STATUSES: [&str; 6] = ["COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED", "ERROR"];

/// One SESSION_SUMMARY webhook (`payload`), with what phonetree keeps of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub session_id: String,
    pub status: String,
    pub last_action: Option<String>,
    pub call_count: Option<u32>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub legs: Vec<Leg>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// The key in `details` (`callA`, `callB`, ...).
    pub name: String,
    pub call_id: Option<String>,
    pub direction: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub status: Option<String>,
    pub duration_s: Option<u64>,
}
