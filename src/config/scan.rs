//! A single pass over web.config text, before the XML parser sees it, that refuses files no
//! web.config needs to be: too many elements, attributes on one element or namespace
//! declarations. The parser's checks for duplicate attributes and namespaces compare each one
//! with the others, so without these caps a 1 MB file could keep ancm busy for minutes, at
//! start and again on every change a running ancm sees.

/// Attributes (namespace declarations included) on one element; ANCM's `<aspNetCore>` has 12,
/// and IIS's largest elements a few dozen.
pub(super) const MAX_ATTRIBUTES: usize = 100;

/// Elements in the file; a web.config at IIS's default size limit (250 KB) holds a few
/// thousand.
pub(super) const MAX_ELEMENTS: usize = 50_000;

/// `xmlns` declarations in the file; web.configs have none or one (XML-Document-Transform).
pub(super) const MAX_NAMESPACES: usize = 100;

/// A cap the text goes over, and where.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Exceeded {
    /// The offset of the start tag that went over.
    pub offset: usize,
    pub what: Cap,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cap {
    /// On the element named.
    Attributes(String),
    Elements,
    Namespaces,
}

/// Counts start tags, attributes and namespace declarations, skipping comments, CDATA,
/// processing instructions, declarations and end tags. Malformed text is left for the parser
/// to report: this pass only counts.
pub(super) fn check(text: &str) -> Result<(), Exceeded> {
    let bytes = text.as_bytes();
    let mut elements = 0;
    let mut namespaces = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find('<') {
        let start = at + found;
        let rest = &text[start..];
        let skip_to = |end: &str, from: usize| {
            text[start + from..]
                .find(end)
                .map_or(text.len(), |i| start + from + i + end.len())
        };
        if rest.starts_with("<!--") {
            at = skip_to("-->", 4);
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            at = skip_to("]]>", 9);
            continue;
        }
        if rest.starts_with("<?") {
            at = skip_to("?>", 2);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("</") {
            at = skip_to(">", 2);
            continue;
        }

        elements += 1;
        if elements > MAX_ELEMENTS {
            return Err(Exceeded {
                offset: start,
                what: Cap::Elements,
            });
        }
        let name_end = rest[1..]
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .map_or(rest.len(), |i| i + 1);
        let name = &rest[1..name_end];
        let mut attributes = 0;
        let mut i = start + name_end;
        // Where the text before the next attribute value starts, so that its name is looked
        // at once.
        let mut since_value = i;
        while i < bytes.len() {
            match bytes[i] {
                b'>' => {
                    i += 1;
                    break;
                }
                quote @ (b'"' | b'\'') => {
                    attributes += 1;
                    if attributes > MAX_ATTRIBUTES {
                        return Err(Exceeded {
                            offset: start,
                            what: Cap::Attributes(name.to_owned()),
                        });
                    }
                    let attribute = text[since_value..i]
                        .trim_end()
                        .trim_end_matches('=')
                        .trim_end();
                    let attribute_name = attribute
                        .rsplit(|c: char| c.is_ascii_whitespace())
                        .next()
                        .unwrap_or_default();
                    if attribute_name == "xmlns" || attribute_name.starts_with("xmlns:") {
                        namespaces += 1;
                        if namespaces > MAX_NAMESPACES {
                            return Err(Exceeded {
                                offset: start,
                                what: Cap::Namespaces,
                            });
                        }
                    }
                    i = bytes[i + 1..]
                        .iter()
                        .position(|&b| b == quote)
                        .map_or(bytes.len(), |end| i + 1 + end + 1);
                    since_value = i;
                }
                _ => i += 1,
            }
        }
        at = i;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element_with(attributes: usize) -> String {
        let mut text = String::from("<configuration><e");
        for i in 0..attributes {
            text.push_str(&format!(" a{i}='>'"));
        }
        text.push_str("/></configuration>");
        text
    }

    #[test]
    fn counts_attributes_per_element() {
        assert_eq!(check(&element_with(MAX_ATTRIBUTES)), Ok(()));
        assert_eq!(
            check(&element_with(MAX_ATTRIBUTES + 1)),
            Err(Exceeded {
                offset: 15,
                what: Cap::Attributes("e".to_owned())
            })
        );
    }

    #[test]
    fn counts_elements_but_not_comments_or_end_tags() {
        let mut text = String::from("<r><!-- <x/> --><![CDATA[<x/>]]><?pi <x/>?>");
        text.push_str(&"<x></x>".repeat(MAX_ELEMENTS - 1));
        text.push_str("</r>");
        assert_eq!(check(&text), Ok(()));
        text.push_str("<y/>");
        let err = check(&text).expect_err("one element too many");
        assert_eq!((err.offset, err.what), (text.len() - 4, Cap::Elements));
    }

    #[test]
    fn counts_namespace_declarations_in_the_file() {
        let element =
            |i: usize| format!("<e xmlns:n{i}=\"urn:{i}\" xmlns = 'urn:x' xmlnsish='1'/>");
        let mut text: String = (0..MAX_NAMESPACES / 2).map(element).collect();
        assert_eq!(check(&text), Ok(()));
        text.push_str(&element(0));
        let err = check(&text).expect_err("one declaration too many");
        assert_eq!(err.what, Cap::Namespaces);
    }
}
