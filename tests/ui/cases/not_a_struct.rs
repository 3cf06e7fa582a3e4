use counter_derive::AtomicField;

#[derive(AtomicField)]
pub enum Status {
    Active,
    Retired,
}

#[derive(AtomicField)]
pub union Bits {
    pub signed: i32,
    pub unsigned: u32,
}

#[derive(AtomicField)]
pub struct Pair(i64, i32);

fn main() {}
