//! Four-letter words (next).
