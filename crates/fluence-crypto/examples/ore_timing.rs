use std::time::Instant;
fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}
fn main() {
    let key = fluence_crypto::OreKey::from_bytes([7u8; 32]);
    let strkey = fluence_crypto::OreKey::from_bytes([8u8; 32]);
    let iters = 200_000u64;
    for round in 0..3 {
        let c0 = cpu_ticks();
        let t = Instant::now();
        for i in 0..iters {
            let pt = fluence_crypto::encode::ore_f64(i as f64 * 1.37);
            std::hint::black_box(key.encrypt(std::hint::black_box(&pt)).unwrap());
        }
        let wall = t.elapsed().as_nanos() as f64 / iters as f64;
        let cpu = (cpu_ticks() - c0) as f64 * 1e7 / iters as f64;
        println!(
            "round {round} encrypt 9B: wall {wall:.0} ns, cpu {cpu:.0} ns ({:.0}/s cpu)",
            1e9 / cpu
        );
    }
    let c0 = cpu_ticks();
    for i in 0..iters / 2 {
        let pt = fluence_crypto::encode::ore_string(&format!("str{i}abcdefghijkl"));
        std::hint::black_box(strkey.encrypt(std::hint::black_box(&pt)).unwrap());
    }
    let cpu = (cpu_ticks() - c0) as f64 * 1e7 / (iters / 2) as f64;
    println!("encrypt 15B: cpu {cpu:.0} ns");
}
