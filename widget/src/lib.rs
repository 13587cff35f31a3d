//! Placeholder; replaced by the widget.
