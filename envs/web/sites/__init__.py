"""The bundled web apps (HTML, JavaScript, CSS), installed as package data and served by ``SiteServer``."""
