//! End-to-end tests: the whole system driven by real clients (see tests/).
