//! `mkcfs`: write an OSTree deployment's composefs image (.ostree.cfs) and
//! print its fs-verity digest.

use std::path::PathBuf;

use argh::FromArgs;

#[derive(FromArgs, Debug)]
/// Write the composefs image .ostree.cfs of an OSTree deployment as ostree
/// >= 2023.4 does, and print its fs-verity digest (ostree.composefs.digest.v0).
struct Args {
    /// the physical root (the directory holding ostree/)
    #[argh(option)]
    physical_root: PathBuf,
    /// the deployment directory, relative to the physical root
    /// (ostree/deploy/OS/deploy/CSUM.SERIAL)
    #[argh(option)]
    deployment: PathBuf,
    /// enable fs-verity on every object the image names and on the image
    #[argh(switch)]
    enable_verity: bool,
    /// write empty metacopy xattrs (no fs-verity digests of the objects)
    #[argh(switch)]
    no_digests: bool,
}

fn main() {
    let args: Args = argh::from_env();
    let opts = rootstock_mkcfs::Options { enable_verity: args.enable_verity, digests: !args.no_digests };
    match rootstock_mkcfs::write_image(&args.physical_root, &args.deployment, &opts) {
        Ok(digest) => println!("{}", rootstock_mkcfs::hex(&digest)),
        Err(e) => {
            eprintln!("mkcfs: {e}");
            std::process::exit(1);
        }
    }
}
