//! Reads the `<aspNetCore>` element out of web.config text: the element and its collections
//! where `<location>` rules put them, each value with the line and column it came from, after
//! the caps that keep reading quick (`scan`), with warnings for what is unknown or ignored.
//! Must not import the sections that interpret the element.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::schema::{closest, KNOWN_ATTRIBUTES, REQUEST_LIMITS_ATTRIBUTES, XDT_NAMESPACE};
use crate::config::error::{ConfigError, Origin};
use crate::config::position::Positions;
use crate::config::scan;

/// The `<aspNetCore>` element as written, before any value is interpreted.
#[derive(Debug)]
pub(in crate::config) struct AspNetCoreElement {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    pub attributes: Vec<Attribute>,
    /// `<environmentVariables>` in order, after `<clear/>`, each with where its value is; a
    /// later name replaces an earlier one that differs only in case, as IIS compares them.
    pub environment: Vec<(String, String, Origin)>,
    /// `<handlerSettings>` in order, after `<clear/>`; names unique ignoring case.
    pub handler_settings: Vec<(String, String, Origin)>,
    /// The attributes of `<requestLimits>` under `<security><requestFiltering>`, found by the
    /// same `<location>` rules as `<aspNetCore>`; empty when there is none.
    pub request_limits: Vec<Attribute>,
    /// `initializationPage` of the first `<add>` in `<applicationInitialization>` (IIS's
    /// warm-up module), found by the same `<location>` rules as `<aspNetCore>`.
    pub initialization_page: Option<Attribute>,
    /// The file declares the XML-Document-Transform namespace: it is a transform such as
    /// web.Release.config, not a web.config.
    pub is_transform: bool,
    pub warnings: Vec<String>,
    /// Errors in entries that could be skipped, so that the rest is still read and checked.
    pub errors: Vec<ConfigError>,
}

#[derive(Debug, Clone)]
pub(in crate::config) struct Attribute {
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

impl AspNetCoreElement {
    pub(in crate::config) fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub(in crate::config) fn origin(&self) -> Origin {
        Origin::File {
            path: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }
}

pub(super) fn parse(path: &Path, text: &str) -> Result<AspNetCoreElement, ConfigError> {
    let positions = Positions::new(text);
    let origin_of = |offset: usize| {
        let (line, column) = positions.at(offset);
        Origin::File {
            path: path.to_owned(),
            line,
            column,
        }
    };
    scan::check(text).map_err(|exceeded| {
        let (what, scope) = match exceeded.what {
            scan::Cap::Attributes(name) => (
                format!("<{name}> has more than {} attributes", scan::MAX_ATTRIBUTES),
                "on one element",
            ),
            scan::Cap::Elements => (
                format!("more than {} elements", scan::MAX_ELEMENTS),
                "in a web.config",
            ),
            scan::Cap::Namespaces => (
                format!(
                    "more than {} namespace declarations (xmlns)",
                    scan::MAX_NAMESPACES
                ),
                "in a web.config",
            ),
        };
        ConfigError::TooMany {
            origin: origin_of(exceeded.offset),
            what,
            scope,
        }
    })?;
    // No DTDs, as in IIS's configuration system: entity declarations could expand a small file
    // into gigabytes. The predefined entities and character references still work.
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1_000_000,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        ConfigError::Xml {
            path: path.to_owned(),
            line: pos.row,
            column: pos.col,
            message: e.to_string(),
        }
    })?;

    let root = doc.root_element();
    let mut web_servers: Vec<roxmltree::Node> = Vec::new();
    if root.has_tag_name("configuration") {
        for child in root.children().filter(|n| n.is_element()) {
            match child.tag_name().name() {
                "system.webServer" => web_servers.push(child),
                // `<location path=".">` (what publish writes) or no path applies to this app;
                // other paths configure child applications.
                "location"
                    if matches!(
                        child.attribute("path"),
                        None | Some("." | "" | "./" | ".\\")
                    ) =>
                {
                    web_servers.extend(children_named(child, "system.webServer"));
                }
                _ => {}
            }
        }
    }
    let found: Vec<roxmltree::Node> = web_servers
        .iter()
        .flat_map(|web_server| children_named(*web_server, "aspNetCore"))
        .collect();
    let limits: Vec<roxmltree::Node> = web_servers
        .iter()
        .flat_map(|web_server| children_named(*web_server, "security"))
        .flat_map(|security| children_named(security, "requestFiltering"))
        .flat_map(|filtering| children_named(filtering, "requestLimits"))
        .collect();

    let initialization_page = web_servers
        .iter()
        .flat_map(|web_server| children_named(*web_server, "applicationInitialization"))
        .flat_map(|init| children_named(init, "add"))
        .find_map(|add| add.attribute_node("initializationPage"))
        .map(|a| Attribute {
            name: a.name().to_owned(),
            value: a.value().to_owned(),
            origin: origin_of(a.range_value().start),
        });

    let Some(element) = found.first().copied() else {
        return Err(ConfigError::NoAspNetCore {
            path: path.to_owned(),
        });
    };
    // IIS refuses a section defined twice for one path (HTTP 500.19), and so do we.
    for (tag, nodes) in [("aspNetCore", &found), ("requestLimits", &limits)] {
        if let [first, second, ..] = nodes.as_slice() {
            let first = origin_of(first.range().start);
            return Err(ConfigError::invalid(
                origin_of(second.range().start),
                "element",
                format!("<{tag}>"),
                format!("one <{tag}> per application; another one is at {first}"),
            ));
        }
    }

    let mut warnings = Vec::new();
    if let Some(host) = children_named(root, "system.applicationHost").next() {
        warnings.push(format!(
            "{}: this file has <system.applicationHost>: it looks like a server-level IIS \
             configuration (applicationHost.config), not an app's web.config",
            origin_of(host.range().start)
        ));
    }
    let mut attributes_of = |node: roxmltree::Node, known: &[&str]| -> Vec<Attribute> {
        node.attributes()
            .filter(|a| a.namespace().is_none())
            .map(|a| {
                if !known.contains(&a.name()) {
                    let hint = closest(a.name(), known)
                        .map(|name| format!("; did you mean \"{name}\"?"))
                        .unwrap_or_default();
                    warnings.push(format!(
                        "{}: unknown attribute {}=\"{}\" on <{}> is ignored{hint}",
                        origin_of(a.range().start),
                        a.name(),
                        a.value(),
                        node.tag_name().name()
                    ));
                }
                Attribute {
                    name: a.name().to_owned(),
                    value: a.value().to_owned(),
                    origin: origin_of(a.range_value().start),
                }
            })
            .collect()
    };
    let attributes = attributes_of(element, KNOWN_ATTRIBUTES);
    let request_limits = limits
        .first()
        .map(|node| attributes_of(*node, REQUEST_LIMITS_ATTRIBUTES))
        .unwrap_or_default();

    let mut errors = Vec::new();
    let mut environment: Vec<(String, String, Origin)> = Vec::new();
    let mut handler_settings: Vec<(String, String, Origin)> = Vec::new();
    for child in element.children().filter(|n| n.is_element()) {
        let collection = match child.tag_name().name() {
            "environmentVariables" => Collection::Environment,
            "handlerSettings" => Collection::HandlerSettings,
            "recycleOnFileChange" => {
                warnings.push(format!(
                    "{}: <recycleOnFileChange> is ignored, as ANCM ignores it",
                    origin_of(child.range().start)
                ));
                continue;
            }
            other => {
                warnings.push(format!(
                    "{}: unknown element <{other}> in <aspNetCore> is ignored",
                    origin_of(child.range().start)
                ));
                continue;
            }
        };
        for entry in child.children().filter(|n| n.is_element()) {
            let tag = entry.tag_name().name();
            match (collection, tag) {
                (Collection::Environment, "clear") => environment.clear(),
                (Collection::HandlerSettings, "clear") => handler_settings.clear(),
                (Collection::Environment, "environmentVariable")
                | (Collection::HandlerSettings, "handlerSetting") => {
                    let name = entry.attribute("name").unwrap_or_default();
                    if name.trim().is_empty() {
                        errors.push(ConfigError::invalid(
                            origin_of(entry.range().start),
                            format!("<{tag}> attribute name"),
                            name,
                            "a non-empty name",
                        ));
                        continue;
                    }
                    let value = entry.attribute("value").unwrap_or_default().to_owned();
                    let origin = entry
                        .attribute_node("value")
                        .map_or_else(|| entry.range().start, |a| a.range_value().start);
                    if collection == Collection::Environment {
                        environment.push((name.to_owned(), value, origin_of(origin)));
                    } else {
                        handler_settings.push((name.to_owned(), value, origin_of(origin)));
                    }
                }
                (_, other) => warnings.push(format!(
                    "{}: unknown element <{other}> in <{}> is ignored",
                    origin_of(entry.range().start),
                    child.tag_name().name()
                )),
            }
        }
    }

    last_of_each_name(&mut environment, |(name, _, _)| name);
    last_of_each_name(&mut handler_settings, |(name, _, _)| name);

    let (line, column) = positions.at(element.range().start);
    Ok(AspNetCoreElement {
        file: path.to_owned(),
        line,
        column,
        attributes,
        environment,
        handler_settings,
        request_limits,
        initialization_page,
        is_transform: doc
            .descendants()
            .any(|n| n.namespaces().any(|ns| ns.uri() == XDT_NAMESPACE)),
        warnings,
        errors,
    })
}

/// Keeps, of entries whose names differ only in case, the last one, where it stands: a later
/// entry replaces an earlier one, as in IIS's collections. One pass, however many entries.
fn last_of_each_name<T>(entries: &mut Vec<T>, name: impl Fn(&T) -> &str) {
    let mut seen = HashSet::new();
    let mut keep: Vec<bool> = entries
        .iter()
        .rev()
        .map(|entry| seen.insert(name(entry).to_ascii_lowercase()))
        .collect();
    keep.reverse();
    let mut keep = keep.into_iter();
    entries.retain(|_| keep.next().unwrap_or(true));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Environment,
    HandlerSettings,
}

fn children_named<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<AspNetCoreElement, ConfigError> {
        parse(Path::new("web.config"), text)
    }

    #[test]
    fn reads_the_published_layout() {
        let el = parse_str(
            r#"<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <aspNetCore processPath="dotnet" arguments=".\App.dll" stdoutLogEnabled="false">
        <environmentVariables>
          <environmentVariable name="A" value="1" />
          <environmentVariable name="a" value="2" />
          <environmentVariable name="B" value="3" />
        </environmentVariables>
      </aspNetCore>
    </system.webServer>
  </location>
</configuration>"#,
        )
        .expect("valid");
        assert_eq!(
            el.attribute("processPath").map(|a| a.value.as_str()),
            Some("dotnet")
        );
        assert_eq!(el.line, 5);
        let environment: Vec<(&str, &str)> = el
            .environment
            .iter()
            .map(|(n, v, _)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(environment, [("a", "2"), ("B", "3")]);
        let Some(Attribute {
            origin: Origin::File { line, .. },
            ..
        }) = el.attribute("arguments")
        else {
            panic!("arguments has a file origin");
        };
        assert_eq!(*line, 5);
    }

    #[test]
    fn other_locations_and_comments_do_not_apply() {
        let err = parse_str(
            r#"<configuration>
  <!-- <system.webServer><aspNetCore processPath="x"/></system.webServer> -->
  <location path="child"><system.webServer><aspNetCore processPath="y"/></system.webServer></location>
</configuration>"#,
        )
        .expect_err("no element applies");
        assert!(matches!(err, ConfigError::NoAspNetCore { .. }), "{err}");
    }

    #[test]
    fn request_limits_follow_the_location_rules() {
        let el = parse_str(
            r#"<configuration>
  <location path="child"><system.webServer><security><requestFiltering><requestLimits maxUrl="1" /></requestFiltering></security></system.webServer></location>
  <location path=".">
    <system.webServer>
      <aspNetCore processPath="x" />
      <security><requestFiltering><requestLimits maxQueryString="65536" maxHeaders="9"><headerLimits /></requestLimits></requestFiltering></security>
    </system.webServer>
  </location>
</configuration>"#,
        )
        .expect("valid");
        let limits: Vec<(&str, &str)> = el
            .request_limits
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(limits, [("maxQueryString", "65536"), ("maxHeaders", "9")]);
        assert!(
            el.warnings
                .iter()
                .any(|w| w.contains("unknown attribute maxHeaders=\"9\" on <requestLimits>")),
            "{:?}",
            el.warnings
        );

        let err = parse_str(
            r#"<configuration>
<system.webServer><aspNetCore processPath="x"/><security><requestFiltering><requestLimits maxUrl="1"/></requestFiltering></security></system.webServer>
<location path="."><system.webServer><security><requestFiltering><requestLimits maxUrl="2"/></requestFiltering></security></system.webServer></location>
</configuration>"#,
        )
        .expect_err("duplicate");
        let text = err.to_string();
        assert!(
            text.starts_with("web.config:3:")
                && text.contains(
                    "one <requestLimits> per application; another one is at web.config:2:"
                ),
            "{text}"
        );
    }

    #[test]
    fn clear_empties_inherited_variables() {
        let el = parse_str(
            r#"<configuration><system.webServer><aspNetCore processPath="x">
<environmentVariables><environmentVariable name="A" value="1"/><clear/><environmentVariable name="B" value="2"/></environmentVariables>
</aspNetCore></system.webServer></configuration>"#,
        )
        .expect("valid");
        assert_eq!(el.environment.len(), 1);
        assert_eq!((&*el.environment[0].0, &*el.environment[0].1), ("B", "2"));
    }

    #[test]
    fn malformed_xml_names_line_and_column() {
        let err = parse_str("<configuration>\n  <system.webServer>\n</configuration>")
            .expect_err("malformed");
        let text = err.to_string();
        assert!(text.starts_with("web.config:3:"), "{text}");
    }

    #[test]
    fn a_second_element_is_an_error_naming_both() {
        let err = parse_str(
            r#"<configuration>
<system.webServer><aspNetCore processPath="a"/></system.webServer>
<location path="."><system.webServer><aspNetCore processPath="b"/></system.webServer></location>
</configuration>"#,
        )
        .expect_err("duplicate");
        let text = err.to_string();
        assert!(
            text.contains("web.config:3:") && text.contains("web.config:2:"),
            "{text}"
        );
    }

    #[test]
    fn entity_declarations_are_refused_so_a_small_file_cannot_explode() {
        let mut text = String::from("<!DOCTYPE configuration [<!ENTITY a \"");
        text.push_str(&"a".repeat(10_000));
        text.push_str("\"><!ENTITY b \"");
        text.push_str(&"&a;".repeat(255));
        text.push_str(
            "\">]><configuration><system.webServer><aspNetCore processPath=\"x\" arguments=\"",
        );
        text.push_str(&"&b;".repeat(200));
        text.push_str("\"/></system.webServer></configuration>");
        let started = std::time::Instant::now();
        let err = parse_str(&text).expect_err("DTD refused");
        assert!(matches!(err, ConfigError::Xml { .. }), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Predefined entities and character references still work without a DTD.
        let el = parse_str(r#"<configuration><system.webServer><aspNetCore processPath="a&amp;b&#x41;"/></system.webServer></configuration>"#)
            .expect("valid");
        assert_eq!(
            el.attribute("processPath").map(|a| a.value.as_str()),
            Some("a&bA")
        );
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one_differing_in_case() {
        let el = parse_str(
            r#"<configuration><system.webServer><aspNetCore processPath="x">
<handlerSettings><handlerSetting name="A" value="1"/><handlerSetting name="b" value="2"/><handlerSetting name="a" value="3"/></handlerSettings>
<environmentVariables><environmentVariable name="X" value="1"/><environmentVariable name="Y" value="2"/><environmentVariable name="x" value="3"/><environmentVariable name="Y" value="4"/></environmentVariables>
</aspNetCore></system.webServer></configuration>"#,
        )
        .expect("valid");
        let settings: Vec<(&str, &str)> = el
            .handler_settings
            .iter()
            .map(|(n, v, _)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(settings, [("b", "2"), ("a", "3")]);
        let Origin::File { line, column, .. } = &el.handler_settings[1].2 else {
            panic!("a file origin");
        };
        assert_eq!((*line, *column), (2, 122));
        let environment: Vec<(&str, &str)> = el
            .environment
            .iter()
            .map(|(n, v, _)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(environment, [("x", "3"), ("Y", "4")]);
    }

    #[test]
    fn too_many_attributes_on_one_element_are_refused_naming_it() {
        let mut text =
            String::from("<configuration>\n<system.webServer><aspNetCore processPath=\"x\"");
        for i in 0..scan::MAX_ATTRIBUTES {
            text.push_str(&format!(" a{i}=\"\""));
        }
        text.push_str("/></system.webServer></configuration>");
        let err = parse_str(&text).expect_err("over the cap");
        assert_eq!(
            err.to_string(),
            "web.config:2:19: <aspNetCore> has more than 100 attributes, the most ancm reads \
             on one element; the file is not read"
        );
    }

    #[test]
    fn too_many_elements_or_namespaces_are_refused() {
        let mut text = String::from(
            "<configuration><system.webServer><aspNetCore processPath=\"x\"><handlerSettings>\n",
        );
        for i in 0..scan::MAX_ELEMENTS {
            text.push_str(&format!("<handlerSetting name=\"h{i}\" value=\"v\"/>\n"));
        }
        text.push_str("</handlerSettings></aspNetCore></system.webServer></configuration>");
        let err = parse_str(&text).expect_err("over the cap");
        assert_eq!(
            err.to_string(),
            "web.config:49998:1: more than 50000 elements, the most ancm reads in a web.config; \
             the file is not read"
        );

        let mut text = String::from("<configuration>");
        for i in 0..=scan::MAX_NAMESPACES {
            text.push_str(&format!("<x xmlns:n{i}=\"urn:n\"/>"));
        }
        text.push_str("</configuration>");
        let err = parse_str(&text).expect_err("over the cap");
        assert!(
            err.to_string().starts_with(
                "web.config:1:2206: more than 100 namespace declarations (xmlns), the most \
                 ancm reads in a web.config"
            ),
            "{err}"
        );
    }
}
