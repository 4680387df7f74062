//! `multipart/form-data` bodies, as the Storage clients upload files: each part's name,
//! file name, content type and bytes.

/// One part of a form.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// A `key="value"` parameter of a header value.
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Splits `body` by the boundary of `content_type`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = param(content_type, "boundary").ok_or("no boundary in the content type")?;
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0).ok_or("the body has no boundary")?;
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        pos += if body[pos..].starts_with(b"\r\n") {
            2
        } else {
            0
        };
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("a part has no end of headers")?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let next = find(body, format!("\r\n{delim}").as_bytes(), head_end + 4)
            .ok_or("a part has no closing boundary")?;
        let (mut name, mut filename, mut ctype) = (String::new(), None, None);
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    name = param(v, "name").unwrap_or_default();
                    filename = param(v, "filename");
                }
                "content-type" => ctype = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        parts.push(Part {
            name,
            filename,
            content_type: ctype,
            data: body[head_end + 4..next].to_vec(),
        });
        pos = next + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_with_a_field_and_a_file_splits_into_its_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"cacheControl\"\r\n\r\n3600\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--world\r\n--XyZ--\r\n";
        let parts = parse("multipart/form-data; boundary=XyZ", body).expect("parses");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "cacheControl");
        assert_eq!(parts[0].data, b"3600");
        assert_eq!(parts[1].filename.as_deref(), Some("a.txt"));
        assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
        assert_eq!(parts[1].data, b"hello\r\n--world");
        assert!(parse("multipart/form-data", body).is_err());
        assert!(parse("multipart/form-data; boundary=XyZ", b"--XyZ\r\nno end").is_err());
    }
}
