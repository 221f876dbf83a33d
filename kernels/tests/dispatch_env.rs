//! Kernel set names (what `SOTTO_KERNELS` gives the CLI, and `LoadOptions::kernels`)
//! really select the named kernels, and `SOTTO_KERNELS_ENSURE` makes CI fail when a
//! set the CPU reports is not the one selected.

use sotto_kernels::Kernels;

#[test]
fn kernel_names_select_the_named_kernels() {
    assert_eq!(Kernels::from_name("scalar").unwrap().name(), "scalar");

    let err = Kernels::from_name("bogus").unwrap_err();
    assert!(err.contains("bogus") && err.contains("avx2"), "{err}");

    for (short, full) in [
        ("avx2", "x86-avx2-fma"),
        ("avx2vnni", "x86-avx2-vnni"),
        ("avx512", "x86-avx512"),
        ("avx512vnni", "x86-avx512-vnni"),
        ("amx", "x86-avx512-amx"),
        ("neon", "aarch64-neon"),
        ("neon-dotprod", "aarch64-neon-dotprod"),
        ("neon-i8mm", "aarch64-neon-i8mm"),
    ] {
        match Kernels::with_isa(short) {
            Some(_) => assert_eq!(Kernels::from_name(short).unwrap().name(), full),
            None => {
                let err = Kernels::from_name(short).unwrap_err();
                assert!(err.contains("lacks"), "{err}");
            }
        }
    }

    assert_eq!(Kernels::detect(), *Kernels::available().last().unwrap());

    // SOTTO_KERNELS_ENSURE names kernel sets, comma-separated, that must be present:
    // `.ci/run` lists every set the CPU's flags in /proc/cpuinfo call for (e.g.
    // avx2,avx2vnni,avx512,avx512vnni,amx), tools/test-neon.sh one of neon, neon-dotprod,
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
            assert_eq!(Kernels::from_name(want).unwrap(), k, "kernel set {want}");
            eprintln!("ensured: {want} = {}", k.name());
        }
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
    let avx512vnni = avx512 && is_x86_feature_detected!("avx512vnni");
    assert_eq!(Kernels::with_isa("avx512vnni").is_some(), avx512vnni);
    // AMX also needs Linux's grant of the tile state, so only one way here;
    // SOTTO_KERNELS_ENSURE (above) requires it where the flags are.
    if Kernels::with_isa("amx").is_some() {
        assert!(avx512vnni, "amx without avx512vnni");
    }
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
