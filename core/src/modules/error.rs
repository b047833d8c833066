//! What makes a module index unusable.

/// A module index that cannot be used, or a dependency graph that cannot be
/// ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// `depends=` names a module that is not there.
    #[error("module {module} depends on {needs}, which is missing")]
    MissingDependency { module: String, needs: String },
    /// A dependency cycle, the first name repeated at the end.
    #[error("module dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A bad line in the index.
    #[error("module index, line {line}: {reason}")]
    Line { line: usize, reason: String },
}
