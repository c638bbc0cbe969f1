//! The app folder and its web.config: where a request's `app` points, and what the file there
//! says, read but not yet interpreted. Must not import the sections that interpret it.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::webconfig::{self, AspNetCoreElement};

/// The app as found on disk.
pub(super) struct Located {
    /// The app folder: the child's working directory and the base of relative paths.
    pub app_dir: PathBuf,
    pub web_config: Option<PathBuf>,
    /// web.config's `<aspNetCore>` element, read when there is a web.config.
    pub element: Option<AspNetCoreElement>,
}

/// Finds the app folder and reads its web.config, if it has one.
pub(super) fn read(app: &Path, have_command: bool) -> Result<Located, ConfigError> {
    let (app_dir, web_config) = locate(app, have_command)?;
    let element = web_config.as_deref().map(webconfig::read).transpose()?;
    Ok(Located {
        app_dir,
        web_config,
        element,
    })
}

/// Finds the app folder and its web.config. A missing web.config is fine when the command
/// comes from the command line.
fn locate(app: &Path, have_command: bool) -> Result<(PathBuf, Option<PathBuf>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: app.to_owned(),
        source,
    };
    let meta = std::fs::metadata(app).map_err(read_error)?;
    if meta.is_file() && !is_config_file(app) {
        return Err(ConfigError::NotWebConfig {
            path: app.to_owned(),
            hint: run_hint(app),
        });
    }
    if meta.is_file() {
        let file = dunce::canonicalize(app).map_err(read_error)?;
        let dir = file.parent().map(Path::to_owned).unwrap_or_default();
        return Ok((dir, Some(file)));
    }
    let dir = dunce::canonicalize(app).map_err(read_error)?;
    let file = dir.join("web.config");
    if file.is_file() {
        Ok((dir, Some(file)))
    } else if have_command {
        Ok((dir, None))
    } else {
        Err(ConfigError::NoWebConfig { path: dir })
    }
}

/// web.config, web.Release.config, app.config: a file ancm can read.
fn is_config_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("config"))
}

/// The command that most likely runs `file`, from its extension.
fn run_hint(file: &Path) -> String {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let runner = match ext.as_str() {
        "js" | "mjs" | "cjs" => "node",
        "py" => "python3",
        "dll" => "dotnet",
        _ => return "COMMAND ARGS...".to_owned(),
    };
    format!("{runner} {}", file.display())
}
