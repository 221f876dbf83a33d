//! `SOTTO_KERNELS` really selects the named kernels. One test per binary:
//! it changes the process environment.

use sotto_kernels::Kernels;

#[test]
fn sotto_kernels_env() {
    std::env::set_var("SOTTO_KERNELS", "scalar");
    assert_eq!(Kernels::from_env().unwrap().name(), "scalar");

    std::env::set_var("SOTTO_KERNELS", "bogus");
    let err = Kernels::from_env().unwrap_err();
    assert!(err.contains("bogus") && err.contains("avx2"), "{err}");

    for (short, full) in [
        ("avx2", "x86-avx2-fma"),
        ("avx2vnni", "x86-avx2-vnni"),
        ("avx512", "x86-avx512"),
        ("avx512vnni", "x86-avx512-vnni"),
        ("neon", "aarch64-neon"),
        ("neon-dotprod", "aarch64-neon-dotprod"),
        ("neon-i8mm", "aarch64-neon-i8mm"),
    ] {
        std::env::set_var("SOTTO_KERNELS", short);
        match Kernels::with_isa(short) {
            Some(_) => assert_eq!(Kernels::from_env().unwrap().name(), full),
            None => {
                let err = Kernels::from_env().unwrap_err();
                assert!(err.contains("lacks"), "{err}");
            }
        }
    }

    std::env::remove_var("SOTTO_KERNELS");
    assert_eq!(Kernels::from_env().unwrap(), Kernels::detect());
    assert_eq!(Kernels::detect(), *Kernels::available().last().unwrap());

    // SOTTO_KERNELS_ENSURE names kernel sets, comma-separated, that must be present:
    // `.ci/run` lists every set the CPU's flags in /proc/cpuinfo call for (e.g.
    // avx2,avx2vnni,avx512,avx512vnni), tools/test-neon.sh one of neon, neon-dotprod,
    // neon-i8mm per emulated CPU. Each must be detected, among `Kernels::available()`
    // (the sets the exactness and consistency tests run) and selected by
    // SOTTO_KERNELS, so a set the runner has can never go untested silently.
    if let Ok(list) = std::env::var("SOTTO_KERNELS_ENSURE") {
        let available = Kernels::available();
        for want in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let k = Kernels::with_isa(want).unwrap_or_else(|| {
                panic!("SOTTO_KERNELS_ENSURE lists {want} but this CPU lacks it")
            });
            assert!(
                available.contains(&k),
                "{want} ({}) is not among the available sets {:?}",
                k.name(),
                available.iter().map(|k| k.name()).collect::<Vec<_>>()
            );
            std::env::set_var("SOTTO_KERNELS", want);
            assert_eq!(Kernels::from_env().unwrap(), k, "SOTTO_KERNELS={want}");
            eprintln!("ensured: {want} = {}", k.name());
        }
        std::env::remove_var("SOTTO_KERNELS");
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn detection_agrees_with_cpu() {
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    assert_eq!(Kernels::with_isa("avx2").is_some(), avx2);
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl");
    assert_eq!(Kernels::with_isa("avx512").is_some(), avx512);
    assert_eq!(
        Kernels::with_isa("avx2vnni").is_some(),
        avx2 && is_x86_feature_detected!("avxvnni")
    );
    assert_eq!(
        Kernels::with_isa("X86-AVX2-FMA").is_some(),
        avx2,
        "full names parse too"
    );
}

#[test]
#[cfg(target_arch = "aarch64")]
fn detection_agrees_with_cpu() {
    use std::arch::is_aarch64_feature_detected as has;
    let neon = has!("neon");
    assert_eq!(Kernels::with_isa("neon").is_some(), neon);
    let dotprod = neon && has!("dotprod");
    assert_eq!(Kernels::with_isa("neon-dotprod").is_some(), dotprod);
    let i8mm = dotprod && has!("i8mm");
    assert_eq!(Kernels::with_isa("neon-i8mm").is_some(), i8mm);
    assert_eq!(
        Kernels::with_isa("AARCH64-NEON").is_some(),
        neon,
        "full names parse too"
    );
    // No x86 kernels here.
    assert!(Kernels::with_isa("avx2").is_none());
}
