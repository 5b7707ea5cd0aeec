//! KDC exchanges over TCP (RFC 4120 7.2.2), run off the async runtime.
