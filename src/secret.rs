//! A password held in memory that never shows up in Debug output, logs or
//! error messages, and whose memory is zeroed when it is dropped (so that a
//! later allocation, a core dump or swap holds no stale copy).

use std::fmt;

/// A secret string (a password). `Debug` and `Display` print a
/// placeholder; only [`Secret::expose`] gives the value, at the one place
/// that sends it to the server. Dropping it zeroes its buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Zeroes the whole buffer (capacity included) and empties the string.
    fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for handing to the server; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Self(value.clone())
    }
}

/// Read straight into a `Secret`, so that a password in the configuration
/// file has no plain copy after parsing (feature `serde`).
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn dropping_zeroes_the_buffer() {
        let mut secret = Secret::new("hunter2-very-secret");
        let (pointer, capacity) = (secret.0.as_ptr(), secret.0.capacity());
        // What drop does; the String (and its allocation) stays alive here.
        secret.wipe();
        assert_eq!(secret.0.capacity(), capacity, "the buffer was not replaced");
        // SAFETY: the String still owns this allocation of `capacity` bytes,
        // all of which wipe() has written.
        let bytes = unsafe { std::slice::from_raw_parts(pointer, capacity) };
        assert!(bytes.iter().all(|b| *b == 0), "{bytes:?}");
    }
}
