//! `#[derive(Keys)]`: the keys a scenario author may write for a model type, read from the
//! same serde attributes that shape its JSON Schema, so the decoder's "unknown key" check,
//! its did-you-mean and the schema cannot disagree.
//!
//! - A struct's keys are its field names, with `#[serde(rename = "…")]` honoured and
//!   `#[serde(skip)]` and `#[serde(flatten)]` fields left out.
//! - An enum's keys are its variant names (externally tagged: `sql: …`), with the
//!   container's `rename_all = "snake_case"` applied and `skip` / `untagged` variants left
//!   out.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, parse_macro_input};

#[proc_macro_derive(Keys, attributes(serde))]
pub fn derive_keys(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match keys(&input) {
        Ok(keys) => {
            let name = &input.ident;
            let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
            quote! {
                impl #impl_generics ::harness_scenario::Keys for #name #ty_generics #where_clause {
                    const KEYS: &'static [&'static str] = &[#(#keys),*];
                }
            }
            .into()
        }
        Err(e) => e.to_compile_error().into(),
    }
}

/// What the serde attributes of one item say.
#[derive(Default)]
struct Serde {
    rename: Option<String>,
    rename_all: Option<String>,
    /// `skip`, `flatten` or `untagged`: not a key of its own.
    not_a_key: bool,
}

fn serde_attrs(attrs: &[Attribute]) -> syn::Result<Serde> {
    let mut out = Serde::default();
    for attr in attrs {
        let is_serde = attr.path().is_ident("serde");
        if !is_serde && !attr.path().is_ident("schemars") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            let ident = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            match (is_serde, ident.as_str()) {
                (_, "skip") | (true, "flatten" | "untagged") => out.not_a_key = true,
                (true, "rename") => out.rename = Some(meta.value()?.parse::<LitStr>()?.value()),
                (true, "rename_all") => {
                    out.rename_all = Some(meta.value()?.parse::<LitStr>()?.value())
                }
                _ => {
                    // Other attributes (`default`, `deny_unknown_fields`, …) do not name keys;
                    // consume their value, if any.
                    if meta.input.peek(syn::Token![=]) {
                        meta.value()?.parse::<syn::Expr>()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        meta.parse_nested_meta(|_| Ok(()))?;
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn keys(input: &DeriveInput) -> syn::Result<Vec<String>> {
    let container = serde_attrs(&input.attrs)?;
    let mut keys = Vec::new();
    match &input.data {
        Data::Struct(s) => {
            let Fields::Named(fields) = &s.fields else {
                return Err(syn::Error::new_spanned(
                    &input.ident,
                    "derive(Keys) needs named fields",
                ));
            };
            for field in &fields.named {
                let attrs = serde_attrs(&field.attrs)?;
                if attrs.not_a_key {
                    continue;
                }
                let name = field
                    .ident
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                keys.push(attrs.rename.unwrap_or(name));
            }
        }
        Data::Enum(e) => {
            for variant in &e.variants {
                let attrs = serde_attrs(&variant.attrs)?;
                if attrs.not_a_key {
                    continue;
                }
                let name = variant.ident.to_string();
                let key = match (attrs.rename, container.rename_all.as_deref()) {
                    (Some(r), _) => r,
                    (None, Some("snake_case")) => snake_case(&name),
                    (None, Some("lowercase")) => name.to_lowercase(),
                    (None, None) => name,
                    (None, Some(other)) => {
                        return Err(syn::Error::new_spanned(
                            &input.ident,
                            format!("derive(Keys) does not know rename_all = \"{other}\""),
                        ));
                    }
                };
                keys.push(key);
            }
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "derive(Keys) works on structs and enums",
            ));
        }
    }
    Ok(keys)
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
