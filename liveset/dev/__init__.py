"""Tools for development and tests only: embedded servers, the schema renderer. Production never
imports them."""
