fn main() {
    for crd in chaperone_crds::all_crds() {
        print!("---\n{}", chaperone_crds::crd_yaml(&crd).unwrap());
    }
}
