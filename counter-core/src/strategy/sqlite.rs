//! SQLite: `UPDATE … RETURNING` (3.35+) for the single-statement operations, and `take_up_to`
//! as a read and a write under `BEGIN IMMEDIATE`: every default of [`Strategy`].

use diesel::sqlite::Sqlite;

use super::Strategy;

impl Strategy for Sqlite {}
