//! Curator's layouts (next).
