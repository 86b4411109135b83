//! Secrets in the config file: each may be given as `X`, or read from a file (`X_file`, a
//! mounted Kubernetes Secret) or an environment variable (`X_env`), so that no secret has to
//! sit in the file or its ConfigMap.
//!
//! [`Resolving`] wraps the TOML deserializer: in the table of a struct with a field `X`, a
//! key `X_file` or `X_env` stands for `X`, and its value names where `X` is read from. Only a
//! secret field takes that: it deserializes through [`string`] or [`optional`] (or is a
//! [`SecretUrl`]), which asks for its value under the [`SECRET`] newtype name, so that
//! `graphql_url_file` is refused rather than read.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use url::Url;

/// The newtype name under which a secret field asks for its value.
const SECRET: &str = "runboard::config::Secret";

/// A secret field: `#[serde(deserialize_with = "secret::string")]`.
pub(super) fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    struct Secret;
    impl<'de> Visitor<'de> for Secret {
        type Value = SecretString;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string (or, with `_file` or `_env` after the key, where to read it)")
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(
            self,
            d: D,
        ) -> Result<SecretString, D::Error> {
            String::deserialize(d).map(SecretString::from)
        }
    }
    deserializer.deserialize_newtype_struct(SECRET, Secret)
}

/// An optional secret field: `#[serde(default, deserialize_with = "secret::optional")]`.
pub(super) fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    string(deserializer).map(Some)
}

/// A URL that is a secret, as a Slack incoming webhook's is: printed redacted, exposed only
/// where the request is made.
#[derive(Clone)]
pub struct SecretUrl(Url);

impl ExposeSecret<Url> for SecretUrl {
    fn expose_secret(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("SecretUrl([REDACTED])")
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = String;

    /// An http(s) URL; the error never repeats it.
    fn from_str(text: &str) -> Result<Self, String> {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Self(url)),
            Ok(url) => Err(format!("expected an http(s) URL, not {}:", url.scheme())),
            Err(e) => Err(format!("expected an http(s) URL ({e})")),
        }
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string(deserializer)?
            .expose_secret()
            .parse()
            .map_err(de::Error::custom)
    }
}

/// Where a secret given as `X_file` or `X_env` is read from.
#[derive(Debug, Clone, Copy)]
enum Source {
    File,
    Environment,
}

impl Source {
    const SUFFIXES: [(&'static str, Source); 2] =
        [("_file", Source::File), ("_env", Source::Environment)];

    /// The secret at `place` (a path or a variable's name); the problem names the place,
    /// never the value.
    fn read(self, place: &str) -> Result<String, String> {
        let value = match self {
            Source::File => {
                let mut text = std::fs::read_to_string(place)
                    .map_err(|e| format!("cannot read the file {place}: {e}"))?;
                // As a mounted Secret or `echo` leaves it.
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
            Source::Environment => std::env::var(place).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("the environment variable {place} is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("the environment variable {place} is not valid UTF-8")
                }
            })?,
        };
        if value.is_empty() {
            return Err(format!("{place} is empty"));
        }
        Ok(value)
    }
}

/// A deserializer whose structs take `X_file` and `X_env` for their secret fields `X`.
pub(super) struct Resolving<D>(pub(super) D);

/// Deserializes values that cannot hold a table straight from the inner deserializer.
macro_rules! scalars {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Resolving<D> {
    type Error = D::Error;

    scalars! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Within::new(visitor, &[]))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(Within::new(visitor, &[]))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_newtype_struct(name, Within::new(visitor, &[]))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_seq(Within::new(visitor, &[]))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Within::new(visitor, &[]))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Within::new(visitor, &[]))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Within::new(visitor, &[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, Within::new(visitor, fields))
    }

    /// The config's enums are names, holding no secrets.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose maps, sequences and inner values are read through [`Resolving`]; `fields`
/// are those of the struct it visits (none for other values).
struct Within<V> {
    visitor: V,
    fields: &'static [&'static str],
}

impl<V> Within<V> {
    fn new(visitor: V, fields: &'static [&'static str]) -> Self {
        Self { visitor, fields }
    }
}

macro_rules! visit_scalars {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Within<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    visit_scalars! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Resolving(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Resolving(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Elements(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Keys {
            map,
            fields: self.fields,
            given: HashSet::new(),
            source: None,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(data)
    }
}

struct Elements<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Elements<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Resolved(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A value read through [`Resolving`].
struct Resolved<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Resolved<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Resolving(d))
    }
}

/// A table's keys, `X_file` and `X_env` standing for the struct's field `X`.
struct Keys<A> {
    map: A,
    fields: &'static [&'static str],
    /// The fields given so far, so that `X` and `X_file` together are refused.
    given: HashSet<String>,
    /// Where the value of the key just read is to be read from: the key as written, and how.
    source: Option<(String, Source)>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Keys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let fields = self.fields;
        let Some((key, field, source)) = self.map.next_key_seed(FieldName { seed, fields })? else {
            return Ok(None);
        };
        // TOML refuses a key given twice, so a field given twice came in two forms. The error
        // is raised here, outside the key's own, so that it does not quote a line that may
        // hold the secret.
        if !self.given.insert(field.clone()) {
            return Err(de::Error::custom(format!(
                "`{field}` is given twice: give one of `{field}`, `{field}_file` and `{field}_env`"
            )));
        }
        self.source = source;
        Ok(Some(key))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.source.take() {
            None => self.map.next_value_seed(Resolved(seed)),
            Some((key, source)) => self.map.next_value_seed(FromSource { seed, key, source }),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Reads a key, handing the struct the field it stands for; also the field's name and, for
/// `X_file` and `X_env`, the key and where the value is read from.
struct FieldName<K> {
    seed: K,
    fields: &'static [&'static str],
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for FieldName<K> {
    type Value = (K::Value, String, Option<(String, Source)>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(d)?;
        let stands_for = (!self.fields.contains(&key.as_str()))
            .then(|| {
                Source::SUFFIXES.into_iter().find_map(|(suffix, source)| {
                    key.strip_suffix(suffix)
                        .filter(|field| self.fields.contains(field))
                        .map(|field| (field.to_owned(), source))
                })
            })
            .flatten();
        let (field, source) = match stands_for {
            Some((field, source)) => (field, Some((key, source))),
            None => (key, None),
        };
        let value = self
            .seed
            .deserialize(de::value::StrDeserializer::<D::Error>::new(&field))?;
        Ok((value, field, source))
    }
}

/// The value of an `X_file` or `X_env` key: the path or variable, read for a secret.
struct FromSource<S> {
    seed: S,
    key: String,
    source: Source,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for FromSource<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        let place = String::deserialize(d)?;
        self.seed.deserialize(Place {
            key: self.key,
            source: self.source,
            place,
            error: PhantomData,
        })
    }
}

/// Hands a secret field the value read from a place; anything else is refused.
struct Place<E> {
    key: String,
    source: Source,
    place: String,
    error: PhantomData<E>,
}

impl<'de, E: de::Error> Deserializer<'de> for Place<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, E> {
        let field = self
            .key
            .rsplit_once('_')
            .map_or(&*self.key, |(field, _)| field);
        Err(E::custom(format!(
            "`{}`: only secrets are read from a file or the environment; give `{field}` in the file itself",
            self.key
        )))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        if name != SECRET {
            return self.deserialize_any(visitor);
        }
        let secret = self
            .source
            .read(&self.place)
            .map_err(|problem| E::custom(format!("`{}`: {problem}", self.key)))?;
        visitor.visit_newtype_struct(de::value::StringDeserializer::<E>::new(secret))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}
