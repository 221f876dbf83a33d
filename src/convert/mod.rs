//! CTranslate2 conversion.
