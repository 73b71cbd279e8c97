fn main() {
    println!("deja");
}
