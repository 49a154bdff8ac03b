//! The page, compiled into the binary: no CDN, no fonts, nothing fetched from elsewhere.

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const STYLE_CSS: &str = include_str!("assets/style.css");
