//! The shop's whole add-to-cart, race-free: `cargo run -p counter-examples --bin add_to_cart`.
//!
//! "Take up to n from the product's stock, then get-or-create the customer's cart line and add
//! what was taken, all or nothing." Cart lines are keyed `(cart_id, product_id)`, a line holds
//! at most 8 of a product, and 16 threads of shoppers add to 6 carts at once. The sale itself
//! (`stock -= n` only if enough, `sold += n`) is one two-column statement.

use std::error::Error;

use counter_core::{transaction, AtomicError, AtomicField, ChangeColumn, RetryPolicy};
use counter_examples::{PooledSqlite, TempDb};
use diesel::prelude::*;
use rand::{Rng, SeedableRng};

diesel::table! { products (id) { id -> BigInt, stock -> Integer, sold -> BigInt, } }
diesel::table! { cart_lines (cart_id, product_id) { cart_id -> BigInt, product_id -> BigInt, quantity -> Integer, } }

#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = products)]
struct Product {
    id: i64,
    #[atomic(min = 0)]
    stock: i32,
    #[atomic]
    sold: i64,
}

/// A line of a cart, keyed by the cart and the product: no surrogate id.
#[derive(Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = cart_lines, primary_key(cart_id, product_id))]
struct CartLine {
    cart_id: i64,
    product_id: i64,
    #[atomic(min = 0, max = 8)]
    quantity: i32,
}

/// The row inserted when the cart has no line for the product yet.
#[derive(Insertable, Identifiable)]
#[diesel(table_name = cart_lines, primary_key(cart_id, product_id))]
struct NewCartLine {
    cart_id: i64,
    product_id: i64,
    quantity: i32,
}

/// Takes up to `n` of `product` and puts what it took in `cart`, all or nothing: a line that
/// would pass 8 fails the whole call with `OutOfRange`, and the stock it took goes back.
/// Conflicts (a busy SQLite file, a deadlock, a serialization failure) re-run the closure.
fn add_to_cart(
    conn: &mut PooledSqlite,
    cart: i64,
    product: i64,
    n: i32,
) -> Result<i32, AtomicError> {
    transaction(conn, RetryPolicy::DEFAULT, |c| {
        let taken = Product::take_stock_up_to(c, product, n)?;
        if taken > 0 {
            let line = NewCartLine {
                cart_id: cart,
                product_id: product,
                quantity: taken,
            };
            CartLine::increment_quantity_or_insert(c, &line, taken)?;
        }
        Ok(taken)
    })
}

const LAMP: i64 = 1;
const STOCK: i32 = 200;
const CARTS: i64 = 6;
const SHOPPERS: u64 = 16;

fn main() -> Result<(), Box<dyn Error>> {
    let db = TempDb::new(SHOPPERS as u32)?;
    let mut conn = db.pool.get()?;
    diesel::sql_query("CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL, sold BIGINT NOT NULL)").execute(&mut conn)?;
    diesel::sql_query("CREATE TABLE cart_lines (cart_id BIGINT NOT NULL, product_id BIGINT NOT NULL, quantity INTEGER NOT NULL, PRIMARY KEY (cart_id, product_id))").execute(&mut conn)?;
    diesel::insert_into(products::table)
        .values((
            products::id.eq(LAMP),
            products::stock.eq(STOCK),
            products::sold.eq(0),
        ))
        .execute(&mut conn)?;

    // 16 shoppers, 20 clicks each on "add 1 to 3 lamps to my cart".
    let outcomes: Vec<Result<i32, AtomicError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..SHOPPERS)
            .map(|shopper| {
                let pool = &db.pool;
                s.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(shopper);
                    let mut conn = pool.get().expect("a connection");
                    (0..20)
                        .map(|_| {
                            add_to_cart(
                                &mut conn,
                                rng.random_range(1..=CARTS),
                                LAMP,
                                rng.random_range(1..=3),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a shopper"))
            .collect()
    });
    let taken: i32 = outcomes.iter().filter_map(|o| o.as_ref().ok()).sum();
    let full = outcomes
        .iter()
        .filter(|o| matches!(o, Err(AtomicError::OutOfRange { .. })))
        .count();
    let other: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .filter(|e| !matches!(e, AtomicError::OutOfRange { .. }))
        .collect();
    assert!(other.is_empty(), "unexpected errors: {other:?}");

    let lines: Vec<CartLine> = cart_lines::table
        .order(cart_lines::cart_id)
        .select(CartLine::as_select())
        .load(&mut conn)?;
    let in_carts: i32 = lines.iter().map(|line| line.quantity).sum();
    let lamp: Product = products::table
        .find(LAMP)
        .select(Product::as_select())
        .first(&mut conn)?;
    let stock = lamp.stock;
    println!(
        "{} clicks: {taken} lamps put in carts, {full} refused (line full, nothing taken)",
        outcomes.len()
    );
    for line in &lines {
        println!(
            "  cart {}: {} of product {}",
            line.cart_id, line.quantity, line.product_id
        );
    }
    println!(
        "stock {stock} + in carts {in_carts} = {} (started at {STOCK})",
        stock + in_carts
    );
    assert_eq!((stock + in_carts, lamp.sold), (STOCK, 0));
    assert_eq!(taken, in_carts);
    assert!(lines.iter().all(|line| line.quantity <= 8));

    // Checkout of cart 1: the sale of two columns, one statement, refused as a whole if short.
    let (cart, quantity) = (lines[0].cart_id, lines[0].quantity);
    let (left, sold) = Product::update_atomic(
        &mut conn,
        LAMP,
        (
            products::stock.decrement_if_at_least(quantity),
            products::sold.increment(i64::from(quantity)),
        ),
    )?;
    println!("cart {cart} checks out {quantity}: stock {left}, sold {sold}");
    let greedy = Product::update_atomic(
        &mut conn,
        LAMP,
        (
            products::stock.decrement_if_at_least(10_000),
            products::sold.increment(10_000),
        ),
    );
    match greedy {
        Err(
            e @ AtomicError::InColumn {
                column: "stock", ..
            },
        ) => println!("a checkout of 10000: refused, {e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    println!("add-to-cart exact: {}", stock + in_carts == STOCK);
    Ok(())
}
